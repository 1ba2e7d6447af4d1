/**
 * `npm run chaos`: a bounded bank test under faults. An API and two workers run as OS processes
 * on a database and Redis prefix of their own; 32 clients post deposits and withdrawals (some
 * overdraw) over a few wallets, each retrying its fingerprint until it is acknowledged (202, or 409
 * when an earlier try had gone through). Faults come in turn: SIGKILL a worker, SIGKILL the API,
 * delete a random half of the prefix's Redis keys, delete all of them, restart Postgres. After each
 * fault ends the clients finish the posts in flight and start no more (fresh posts would enqueue
 * their wallets and hide a stuck one), and we time how long until every acknowledged transaction
 * is final (bound 30 s); then the load resumes.
 * One post in five is a transfer between two of the wallets (retried like the rest); after the
 * drain each acknowledged transfer must be completed or rejected, with its legs as the audit's
 * transfer rules and money conservation say. One in twenty voids an earlier transfer: after the
 * drain each acknowledged void is final (the transfer voided, or still completed with every
 * reversal of its credit rejected). One in eight creates a hold, meant to be captured in part,
 * released, or left to expire (2 s); one in fourteen sends a capture or release of an earlier hold
 * (again later while the hold is pending). After the load every capture and release left is sent,
 * and after the drain each acknowledged hold must have ended as meant (or rejected), out of `held`,
 * every wallet's `available` be its balance minus its live holds, and the audit's hold rules hold.
 * Each fault must show that it did something (a kill hit a live process, a wipe deleted keys, a
 * restart or crash gave Postgres a new start time, a Redis write pause made the relay give up), or
 * it counts as a violation. Then the ledger is audited (src/shared/audit: every rule, deserved
 * rejections included), checked through the API, and the event stream is checked against it: one
 * TransactionCreated per transaction, one BalanceChanged or TransactionRejected per decision, in
 * refno order per wallet. The last line is exactly `N faults, M violations`; the exit code is
 * non-zero on any violation or slow recovery.
 *
 * CHAOS_REDIS_CLUSTER=1 runs it all on a 3-master Redis Cluster of its own (ops/redis-cluster.sh, ports
 * 7301-7303) with QUEUE_SHARDS=3, and adds a fault: SIGKILL the busiest master that does not hold the
 * event stream and start it again (it comes back empty: its shards' queue keys are lost).
 *
 * CHAOS_POSTGRES_FAULTS=0 skips the two Postgres faults (for a run beside other people's tests).
 *
 * CHAOS_SELFTEST=1 breaks the results on purpose after the drain (a covered withdrawal marked
 * rejected, a wallet's `held` off by one, a BalanceChanged published twice, another one lost) and
 * passes only if the checks report exactly those.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { loadConfig } from '../src/shared/infra/config.js';
import { createDatabasePool } from '../src/shared/infra/db.js';
import { createDatabaseIfMissing, dropDatabase, migrate } from '../src/shared/infra/migrate.js';
import { connectRedis, deleteKeysWithPrefix, isCluster, type RedisClient } from '../src/shared/infra/redis.js';
import { auditEventStream, describeEventViolation } from '../src/shared/audit/event-audit.js';
import { auditLedger, describeViolation } from '../src/shared/audit/ledger-audit.js';
import { eventStreamKey } from '../src/shared/events/event-stream.js';
import { freePort } from './service.js';

const execFileAsync = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLIENTS = 32;
const WALLETS = 40;
const RECOVERY_BOUND_MS = 30_000;
/** Everything, setup to cleanup, must fit in 3 minutes; past this the run fails rather than hang. */
const HARD_DEADLINE_MS = 170_000;
const LOAD_BETWEEN_FAULTS_MS = 3_000;
const SELFTEST = process.env.CHAOS_SELFTEST === '1';
/** CHAOS_POSTGRES_FAULTS=0 leaves Postgres alone (while others' tests use the same server). */
const POSTGRES_FAULTS = process.env.CHAOS_POSTGRES_FAULTS !== '0';
/** The relay gives up a publish after this long; a Redis write pause longer than it makes it give up. */
const RELAY_PUBLISH_TIMEOUT_MS = 1_000;

const started = Date.now();
const suffix = randomBytes(4).toString('hex');
const baseUrl = new URL(process.env.CHAOS_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
baseUrl.pathname = `/wallet_chaos_${suffix}`;
const DATABASE_URL = baseUrl.toString();
const ON_CLUSTER = process.env.CHAOS_REDIS_CLUSTER === '1';
/** The cluster's ports are its own (the test suite's cluster is on 7101-7103). */
const CLUSTER_PORT_BASE = 7300;
const CLUSTER_PORTS = [1, 2, 3].map((offset) => CLUSTER_PORT_BASE + offset);
const REDIS_URL = ON_CLUSTER
  ? `redis+cluster://${CLUSTER_PORTS.map((port) => `127.0.0.1:${port}`).join(',')}`
  : (process.env.CHAOS_REDIS_URL ?? 'redis://127.0.0.1:6379');
const QUEUE_PREFIX = `chaos_${suffix}`;
const logDir = path.join(tmpdir(), `wallet-chaos-${suffix}`);
mkdirSync(logDir, { recursive: true });

const violations: string[] = [];
const log = (line: string) => process.stdout.write(`${line}\n`);
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;

// --- service processes ------------------------------------------------------------------------

const children = new Set<ChildProcess>();

function serviceEnv(apiPort: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL,
    REDIS_URL,
    QUEUE_PREFIX,
    QUEUE_SHARDS: ON_CLUSTER ? '3' : '1',
    PORT: String(apiPort),
    HOST: '127.0.0.1',
    METRICS_PORT: '0',
    LOG_LEVEL: 'info',
    AUTH_DISABLED: 'true',
    RATE_LIMIT_PER_SECOND: '0',
    DB_POOL_SIZE: '8',
    WORKER_CONCURRENCY: '8',
    // Short enough that a dead worker's job and a stranded wallet come back well within the bound.
    WORKER_LOCK_DURATION_MS: '4000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    SWEEP_INTERVAL_MS: '1000',
    SWEEP_STALE_AFTER_MS: '3000',
    SHUTDOWN_TIMEOUT_MS: '5000',
    RELAY_INTERVAL_MS: '100',
    RELAY_PUBLISH_TIMEOUT_MS: String(RELAY_PUBLISH_TIMEOUT_MS),
    // The final check reads every event: nothing may be trimmed.
    EVENT_STREAM_MAX_LENGTH: '1000000',
  };
}

/** `node --import tsx src/cli.ts <role>`; resolves once it logged that it is up. */
async function startService(name: string, role: 'api' | 'worker', apiPort: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), role], {
    cwd: ROOT,
    env: serviceEnv(apiPort),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const file = createWriteStream(path.join(logDir, `${name}.log`), { flags: 'a' });
  child.stderr.pipe(file);
  const readyMessage = role === 'api' ? '"msg":"api listening"' : '"msg":"worker started"';
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    let ready = false;
    child.stdout.on('data', (chunk: Buffer) => {
      file.write(chunk);
      if (ready) return;
      buffered += chunk.toString();
      if (buffered.includes(readyMessage)) {
        ready = true;
        resolve();
      }
      buffered = buffered.slice(-2000);
    });
    child.once('exit', (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before ready`)));
  });
  return child;
}

async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

async function stopGracefully(child: ChildProcess): Promise<void> {
  const timer = setTimeout(() => child.kill('SIGKILL'), 8_000);
  await kill(child, 'SIGTERM');
  clearTimeout(timer);
}

// --- HTTP -------------------------------------------------------------------------------------

interface Answer {
  status: number;
  body: unknown;
}

async function call(apiUrl: string, method: string, urlPath: string, json?: unknown): Promise<Answer> {
  const response = await fetch(`${apiUrl}${urlPath}`, {
    method,
    headers: json === undefined ? {} : { 'content-type': 'application/json' },
    body: json === undefined ? undefined : JSON.stringify(json),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as unknown) : null };
}

/** Retries network errors and 5xx (the API or its database being away) until `until`. */
async function callRetrying(apiUrl: string, method: string, urlPath: string, json?: unknown): Promise<Answer> {
  for (;;) {
    try {
      const answer = await call(apiUrl, method, urlPath, json);
      if (answer.status < 500) return answer;
    } catch {
      // connection refused or reset, timeout: the API is being killed or restarted
    }
    if (Date.now() - started > HARD_DEADLINE_MS) throw new Error(`${method} ${urlPath}: no answer before the deadline`);
    await sleep(50 + Math.random() * 150);
  }
}

const cents = (amount: unknown) => Math.round(Number(amount) * 100);

// --- the clients ------------------------------------------------------------------------------

interface Acknowledged {
  walletId: number;
  amountCents: number;
}

const acknowledged = new Map<string, Acknowledged>();
/** Transfers acknowledged (202, or 409 for an earlier try that went through), by fingerprint. */
const acknowledgedTransfers = new Map<string, { id: string; from: number; to: number; amountCents: number }>();
/** Transfer ids a client asked to void (each at most one client at a time). */
const voidsAsked = new Set<string>();
/** Voids acknowledged (202, or 409 transfer-void-exists for an earlier try that went through), by transfer id. */
const acknowledgedVoids = new Set<string>();

/** An acknowledged hold and what its client means to do with it. */
interface HoldPlan {
  walletId: number;
  holdId: string;
  amountCents: number;
  plan: 'capture' | 'release' | 'expire';
  /** For a capture: the part to capture. */
  captureCents: number;
  /** The capture or release was acknowledged (or the hold was rejected: nothing to do). */
  settled: boolean;
}
/** Holds acknowledged (201/202/422, or 409 duplicate-fingerprint for an earlier try), by fingerprint. */
const acknowledgedHolds = new Map<string, HoldPlan>();
/** Captures and releases still to send. */
const holdActions: HoldPlan[] = [];
const HOLD_SHORT_EXPIRY_SECONDS = 2;

interface Clients {
  /** No new transactions; resolves once every one in flight is acknowledged. */
  pause(): Promise<void>;
  resume(): void;
}

function runClients(apiUrl: string, walletIds: number[]): Clients {
  const postTransfer = async () => {
    const from = walletIds[Math.floor(Math.random() * walletIds.length)]!;
    let to = walletIds[Math.floor(Math.random() * walletIds.length)]!;
    if (to === from) to = walletIds[(walletIds.indexOf(from) + 1) % walletIds.length]!;
    const amountCents = 100 + Math.floor(Math.random() * 8_000);
    const fingerprint = `chaos-transfer-${randomUUID()}`;
    const answer = await callRetrying(apiUrl, 'POST', '/transfers', {
      from,
      to,
      amount: (amountCents / 100).toFixed(2),
      fingerprint,
    });
    const made = answer.status === 202 ? answer.body : (answer.body as { transfer?: unknown } | null)?.transfer;
    const id = (made as { id?: unknown } | null | undefined)?.id;
    if ((answer.status === 202 || answer.status === 409) && typeof id === 'string') {
      acknowledgedTransfers.set(fingerprint, { id, from, to, amountCents });
    } else {
      violations.push(`POST /transfers ${fingerprint}: unexpected ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  };
  const voidTransfer = async () => {
    // Not the newest transfers: they are likely still pending.
    const known = [...acknowledgedTransfers.values()];
    const candidate = known[Math.floor(Math.random() * known.length * 0.8)];
    if (!candidate || voidsAsked.has(candidate.id)) return;
    voidsAsked.add(candidate.id);
    // Retried until answered: a lost answer meets its own live reversal (409 transfer-void-exists).
    const answer = await callRetrying(apiUrl, 'POST', '/transfer-voids', { transferId: candidate.id, reason: 'chaos' });
    const type = (answer.body as { type?: string } | null)?.type ?? '';
    if (answer.status === 202 || (answer.status === 409 && type.endsWith('transfer-void-exists'))) {
      acknowledgedVoids.add(candidate.id);
    } else if (answer.status === 409 && type.endsWith('transfer-not-voidable')) {
      voidsAsked.delete(candidate.id); // pending (or rejected): maybe later
    } else {
      violations.push(`void of transfer ${candidate.id}: unexpected ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  };
  const postHold = async () => {
    const walletId = walletIds[Math.floor(Math.random() * walletIds.length)]!;
    const amountCents = 200 + Math.floor(Math.random() * 6_000);
    const plan = (['capture', 'release', 'expire'] as const)[Math.floor(Math.random() * 3)]!;
    const fingerprint = `chaos-hold-${randomUUID()}`;
    const answer = await callRetrying(apiUrl, 'POST', `/wallets/${walletId}/holds`, {
      amount: (amountCents / 100).toFixed(2),
      fingerprint,
      expiresInSeconds: plan === 'expire' ? HOLD_SHORT_EXPIRY_SECONDS : 600,
    });
    const body = answer.body as { id?: unknown; amount?: unknown; hold?: { id?: unknown; amount?: unknown } } | null;
    const hold = answer.status === 409 ? body?.hold : body;
    if (![201, 202, 409, 422].includes(answer.status) || typeof hold?.id !== 'string') {
      violations.push(`POST hold ${fingerprint}: unexpected ${answer.status} ${JSON.stringify(answer.body)}`);
      return;
    }
    if (cents(hold.amount) !== amountCents) violations.push(`hold ${fingerprint} names another amount`);
    const captureCents = 100 + Math.floor(Math.random() * (amountCents - 99));
    const planned = { walletId, holdId: hold.id, amountCents, plan, captureCents, settled: plan === 'expire' };
    acknowledgedHolds.set(fingerprint, planned);
    if (plan !== 'expire') holdActions.push(planned);
  };
  const settleHold = async () => {
    const planned = holdActions.shift();
    if (planned) await sendHoldAction(apiUrl, planned);
  };
  const post = async () => {
    const kind = Math.random();
    if (kind < 0.2) return postTransfer();
    if (kind < 0.25) return voidTransfer();
    if (kind < 0.375) return postHold();
    if (kind < 0.45) return settleHold();
    const walletId = walletIds[Math.floor(Math.random() * walletIds.length)]!;
    const withdrawal = Math.random() < 0.4;
    // Withdrawals run larger than deposits, so some of them overdraw and must be rejected.
    const amountCents = (withdrawal ? -1 : 1) * (100 + Math.floor(Math.random() * (withdrawal ? 15_000 : 10_000)));
    const amount = (amountCents / 100).toFixed(2);
    const fingerprint = `chaos-${randomUUID()}`;
    // The same fingerprint until acknowledged: a lost answer must not lose or double the money.
    const answer = await callRetrying(apiUrl, 'POST', `/wallets/${walletId}/transactions`, { amount, fingerprint });
    if (answer.status === 202 || answer.status === 409) {
      const existing = (answer.body as { transaction?: { amount?: unknown } } | null)?.transaction;
      if (answer.status === 409 && existing && cents(existing.amount) !== amountCents) {
        violations.push(`409 for ${fingerprint} names another amount: ${String(existing.amount)}`);
      }
      acknowledged.set(fingerprint, { walletId, amountCents });
    } else {
      violations.push(`POST ${fingerprint}: unexpected ${answer.status} ${JSON.stringify(answer.body)}`);
    }
  };
  let paused = false;
  let running: Promise<void>[] = [];
  const start = () => {
    paused = false;
    running = Array.from({ length: CLIENTS }, async () => {
      while (!paused) await post();
    });
  };
  start();
  return {
    async pause() {
      paused = true;
      await Promise.all(running);
    },
    resume: start,
  };
}

/**
 * Sends a hold's capture (of its part) or release, retried until answered; a hold still pending
 * goes back in line, a rejected one needs nothing. Anything else is a violation.
 */
async function sendHoldAction(apiUrl: string, planned: HoldPlan): Promise<void> {
  const base = `/wallets/${planned.walletId}/holds/${planned.holdId}`;
  const answer =
    planned.plan === 'capture'
      ? await callRetrying(apiUrl, 'POST', `${base}/capture`, { amount: (planned.captureCents / 100).toFixed(2) })
      : await callRetrying(apiUrl, 'POST', `${base}/release`, {});
  const status = (answer.body as { hold?: { status?: string } } | null)?.hold?.status;
  if (answer.status === 200 || answer.status === 202) planned.settled = true;
  else if (answer.status === 409 && status === 'pending') holdActions.push(planned);
  else if (answer.status === 409 && status === 'rejected') planned.settled = true;
  else violations.push(`${planned.plan} of hold ${planned.holdId}: unexpected ${answer.status} (${status ?? '-'})`);
}

/** After the load: every capture and release not yet acknowledged is sent until it is. */
async function settleRemainingHolds(apiUrl: string): Promise<void> {
  const deadline = Date.now() + RECOVERY_BOUND_MS;
  while (holdActions.length > 0) {
    if (Date.now() > deadline) {
      violations.push(`${holdActions.length} holds still pending 30 s after the load stopped`);
      return;
    }
    const round = holdActions.splice(0);
    await Promise.all(round.map((planned) => sendHoldAction(apiUrl, planned)));
    if (holdActions.length > 0) await sleep(200);
  }
}

// --- recovery ---------------------------------------------------------------------------------

const PendingCount = z.object({ count: z.number() });

/**
 * Milliseconds until every acknowledged transaction and transfer is final (a transfer: its debit
 * rejected, or both legs applied; its void's reversals decided), and every acknowledged hold is
 * decided, not active past its expiry, and out of `held` once captured, released or expired (its
 * capture's debit applied); Infinity past the bound.
 */
async function timeUntilFinal(pool: DatabasePool, since: number): Promise<number> {
  const deadline = since + RECOVERY_BOUND_MS;
  const fingerprints = [...acknowledged.keys()];
  const transferFingerprints = [...acknowledgedTransfers.keys()];
  const holdIds = [...acknowledgedHolds.values()].map((planned) => planned.holdId);
  for (;;) {
    try {
      const pending = await pool.oneFirst(sql.type(PendingCount)`
        SELECT (SELECT count(*) FROM transactions
                WHERE status = 'pending' AND fingerprint = ANY(${sql.array(fingerprints, 'text')}))::int
             + (SELECT count(*) FROM transfers tr
                JOIN transactions d ON d.wallet_id = tr.from_wallet AND d.seq = tr.debit_seq
                LEFT JOIN transactions c ON c.wallet_id = tr.to_wallet AND c.seq = tr.credit_seq
                WHERE tr.fingerprint = ANY(${sql.array(transferFingerprints, 'text')})
                  AND (d.status = 'pending' OR (d.status = 'applied' AND c.status IS DISTINCT FROM 'applied')))::int
             + (SELECT count(*) FROM transactions
                WHERE status = 'pending' AND transfer_id IS NOT NULL AND voids IS NOT NULL)::int
             + (SELECT count(*) FROM holds
                WHERE id = ANY(${sql.array(holdIds, 'uuid')})
                  AND (status = 'pending' OR (status = 'active' AND expires_at <= now())
                       OR (status IN ('captured', 'released', 'expired') AND NOT held_released)))::int
             + (SELECT count(*) FROM transactions
                WHERE status = 'pending' AND hold_id = ANY(${sql.array(holdIds, 'uuid')}))::int
             AS count
      `);
      if (pending === 0) return Date.now() - since;
    } catch {
      // Postgres restarting: ask again
    }
    if (Date.now() > deadline) return Number.POSITIVE_INFINITY;
    await sleep(100);
  }
}

// --- faults -----------------------------------------------------------------------------------

interface Services {
  api: ChildProcess;
  workers: ChildProcess[];
}

/** The servers that hold keys: the one Redis, or a cluster's masters. */
const serversOf = (redis: RedisClient) => (isCluster(redis) ? redis.nodes('master') : [redis]);

async function scanPrefix(redis: RedisClient): Promise<string[]> {
  const keys: string[] = [];
  for (const server of serversOf(redis)) {
    let cursor = '0';
    do {
      const [next, batch] = await server.scan(cursor, 'MATCH', `${QUEUE_PREFIX}:*`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
  }
  return keys;
}

/** The cluster script, on the chaos run's own ports. */
async function redisCluster(...command: ['start' | 'stop' | 'status'] | ['kill' | 'restart', number]): Promise<void> {
  await execFileAsync('bash', [path.join(ROOT, 'ops/redis-cluster.sh'), ...command.map(String)], {
    env: { ...process.env, REDIS_CLUSTER_PORT_BASE: String(CLUSTER_PORT_BASE) },
    timeout: 60_000,
  });
}

/**
 * SIGKILL the master of the busiest shard and start the same command line again: it comes back
 * knowing its slots (nodes.conf) but with none of its keys (no persistence).
 */
async function killClusterMaster(redis: RedisClient): Promise<string | null> {
  // Not the event stream's master: the stream is the events' own store, kept (AOF) where they
  // matter; losing it is not a fault the service can recover from, as the Redis wipes above say.
  const streamSlot = Number(await redis.call('CLUSTER', 'KEYSLOT', eventStreamKey(QUEUE_PREFIX)));
  const holdsStream = await Promise.all(
    serversOf(redis).map(async (master) => Number(await master.call('CLUSTER', 'COUNTKEYSINSLOT', streamSlot)) > 0),
  );
  const masters = serversOf(redis).filter((_, index) => !holdsStream[index]);
  const sizes = await Promise.all(masters.map((master) => master.dbsize()));
  const victim = masters[sizes.indexOf(Math.max(...sizes))]!;
  const keysBefore = Math.max(...sizes);
  const pid = Number(/^process_id:(\d+)/m.exec(await victim.info('server'))?.[1]);
  const port = Number(victim.options.port);
  await redisCluster('kill', port);
  await sleep(2_500); // past cluster-node-timeout: the cluster marks the node failed
  // The same flags as it was started with; it rejoins with its slots, empty.
  await redisCluster('restart', port).catch(() => undefined); // waits 10 s for the cluster; we wait longer below
  const deadline = Date.now() + RECOVERY_BOUND_MS;
  while (Date.now() < deadline) {
    try {
      await redisCluster('status');
      return `master :${port} (pid ${pid}, ${keysBefore} keys) killed and started again; the cluster is ok`;
    } catch {
      await sleep(200);
    }
  }
  return null;
}

/** Postgres' start time: a restart or a crash changes it. */
async function postmasterStart(pool: DatabasePool): Promise<string | null> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    try {
      return await pool.oneFirst(sql.type(z.object({ started: z.string() }))`
        SELECT pg_postmaster_start_time()::text AS started
      `);
    } catch {
      await sleep(200); // Postgres still starting
    }
  }
  return null;
}

/** How many lines of the services' logs so far contain `text`. */
function logLinesWith(text: string): number {
  let count = 0;
  for (const name of readdirSync(logDir)) {
    count += readFileSync(path.join(logDir, name), 'utf8')
      .split('\n')
      .filter((line) => line.includes(text)).length;
  }
  return count;
}

/** The queue's keys: everything under the prefix but the event stream (the stream is the events' own store). */
function isQueueKey(key: string): boolean {
  return key !== eventStreamKey(QUEUE_PREFIX);
}

interface Fault {
  name: string;
  /** Injects the fault; returns what it did, or null when it did nothing (a failed fault). */
  inject(): Promise<string | null>;
}

function faults(services: Services, apiPort: number, redis: RedisClient, pool: DatabasePool): Fault[] {
  let restarts = 0;
  const restartPostgres = async (mode: 'restart' | 'crash'): Promise<string | null> => {
    const before = await postmasterStart(pool);
    const rebuildsBefore = logLinesWith('"msg":"pending markers were lost');
    const [version] = readdirSync('/etc/postgresql');
    const cluster = ['--skip-systemctl-redirect', version!, 'main'];
    if (mode === 'restart') {
      await execFileAsync('pg_ctlcluster', [...cluster, 'restart'], { timeout: 30_000 });
    } else {
      // An immediate stop is a crash: no checkpoint, crash recovery at start, unlogged tables emptied.
      await execFileAsync('pg_ctlcluster', [...cluster, 'stop', '-m', 'immediate'], { timeout: 30_000 });
      await execFileAsync('pg_ctlcluster', [...cluster, 'start'], { timeout: 30_000 });
    }
    const after = await postmasterStart(pool);
    if (after === null || after === before) return null;
    if (mode === 'restart') return `Postgres started again at ${after}`;
    // The crash emptied the unlogged pending markers: a sweeper must rebuild them.
    const rebuilt = '"msg":"pending markers were lost';
    const deadline = Date.now() + RECOVERY_BOUND_MS;
    while (logLinesWith(rebuilt) <= rebuildsBefore && Date.now() < deadline) await sleep(200);
    return logLinesWith(rebuilt) > rebuildsBefore
      ? `Postgres started again at ${after} after crash recovery, and a sweeper rebuilt the pending markers`
      : null;
  };
  const killProcess = async (victim: ChildProcess): Promise<string | null> => {
    if (victim.exitCode !== null || victim.signalCode !== null) return null;
    await kill(victim, 'SIGKILL');
    return victim.signalCode === 'SIGKILL' ? `pid ${victim.pid} killed` : null;
  };
  return [
    {
      name: 'SIGKILL a worker',
      async inject() {
        const victim = services.workers.shift()!;
        const done = await killProcess(victim);
        services.workers.push(await startService(`worker-r${(restarts += 1)}`, 'worker', apiPort));
        return done;
      },
    },
    {
      name: 'SIGKILL the API',
      async inject() {
        const done = await killProcess(services.api);
        services.api = await startService(`api-r${(restarts += 1)}`, 'api', apiPort);
        return done;
      },
    },
    {
      name: 'delete a random part of the queue keys in Redis',
      async inject() {
        // One DEL per key, not atomic: what a failover that drops writes or an operator's SCAN | DEL does.
        const keys = (await scanPrefix(redis)).filter(isQueueKey);
        let deleted = 0;
        for (const key of keys) if (Math.random() < 0.5) deleted += await redis.del(key);
        return deleted > 0 ? `deleted ${deleted} of ${keys.length} keys` : null;
      },
    },
    {
      name: 'delete all queue keys in Redis',
      async inject() {
        const keys = (await scanPrefix(redis)).filter(isQueueKey);
        let deleted = 0;
        for (const key of keys) deleted += await redis.del(key);
        return deleted > 0 ? `deleted ${deleted} keys` : null;
      },
    },
    {
      name: 'pause Redis writes past the relay timeout (the relay gives up; its publish lands later)',
      async inject() {
        const failedPass = '"msg":"outbox relay pass failed"';
        const gaveUp = logLinesWith(failedPass);
        await Promise.all(
          serversOf(redis).map((server) =>
            server.call('CLIENT', 'PAUSE', String(RELAY_PUBLISH_TIMEOUT_MS * 3), 'WRITE'),
          ),
        );
        await sleep(RELAY_PUBLISH_TIMEOUT_MS * 3 + 500);
        const now = logLinesWith(failedPass);
        return now > gaveUp ? `the relay gave up ${now - gaveUp} time(s) while Redis held its writes` : null;
      },
    },
    ...(ON_CLUSTER
      ? [
          {
            name: 'SIGKILL a Redis Cluster master, then start it again (empty)',
            inject: () => killClusterMaster(redis),
          },
        ]
      : []),
    { name: 'restart Postgres', inject: () => restartPostgres('restart') },
    { name: 'crash Postgres (immediate stop, then start)', inject: () => restartPostgres('crash') },
  ];
}

// --- final checks -----------------------------------------------------------------------------

const TransactionBody = z.object({
  fingerprint: z.string(),
  walletId: z.number(),
  amount: z.unknown(),
  status: z.string(),
  refno: z.number().optional(),
});
const TransferBody = z.object({
  from: z.number(),
  to: z.number(),
  amount: z.unknown(),
  status: z.enum(['pending', 'completed', 'rejected', 'voiding', 'voided']),
  credit: z.string().optional(),
});
const HoldBody = z.object({
  status: z.enum(['pending', 'active', 'rejected', 'captured', 'released', 'expired']),
  amount: z.unknown(),
  capturedAmount: z.unknown().optional(),
  captureTransactionId: z.string().optional(),
  held: z.boolean(),
});
const WalletBody = z.object({ balance: z.unknown(), available: z.unknown() });
const Page = z.object({ items: z.array(TransactionBody), nextCursor: z.string().nullable().optional() });

async function checkThroughApi(apiUrl: string, walletIds: number[]): Promise<string[]> {
  const violations: string[] = [];
  // Each acknowledged fingerprint is final and is what the client sent.
  const entries = [...acknowledged];
  let next = 0;
  const lookup = async () => {
    while (next < entries.length) {
      const [fingerprint, sent] = entries[next++]!;
      const answer = await callRetrying(apiUrl, 'GET', `/transactions/by-fingerprint/${fingerprint}`);
      const parsed = TransactionBody.safeParse(answer.body);
      if (answer.status !== 200 || !parsed.success) {
        violations.push(`GET by fingerprint ${fingerprint}: ${answer.status}`);
      } else if (parsed.data.status === 'pending') {
        violations.push(`${fingerprint} still pending`);
      } else if (parsed.data.walletId !== sent.walletId || cents(parsed.data.amount) !== sent.amountCents) {
        violations.push(`${fingerprint}: stored ${parsed.data.walletId}/${String(parsed.data.amount)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, lookup));

  for (const walletId of walletIds) {
    const listed: z.infer<typeof TransactionBody>[] = [];
    let cursor: string | null | undefined = null;
    do {
      const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const answer = await callRetrying(apiUrl, 'GET', `/wallets/${walletId}/transactions?limit=500${query}`);
      const page = Page.parse(answer.body);
      listed.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    const expected = [...acknowledged].filter(([, sent]) => sent.walletId === walletId).map(([fp]) => fp);
    // Transfer legs (and their reversals) and hold captures are the wallet's transactions too; they
    // are checked with their transfers and holds below.
    const own = listed.filter((tx) => !tx.fingerprint.startsWith('transfer:') && !tx.fingerprint.startsWith('hold:'));
    const listedFingerprints = new Set(own.map((tx) => tx.fingerprint));
    if (own.length !== expected.length || expected.some((fp) => !listedFingerprints.has(fp))) {
      violations.push(`wallet ${walletId}: lists ${own.length} transactions, ${expected.length} acknowledged`);
    }
    const applied = listed.filter((tx) => tx.refno !== undefined).sort((a, b) => a.refno! - b.refno!);
    if (applied.some((tx, index) => tx.refno !== index + 1))
      violations.push(`wallet ${walletId}: refnos not contiguous`);
    const sum = applied.reduce((total, tx) => total + cents(tx.amount), 0);
    const balance = await callRetrying(apiUrl, 'GET', `/wallets/${walletId}/balance`);
    if (balance.status !== 200 || cents(balance.body) !== sum) {
      violations.push(
        `wallet ${walletId}: balance ${JSON.stringify(balance.body)} but applied amounts sum to ${sum / 100}`,
      );
    }
  }
  // Each acknowledged transfer ended, as it was sent; a completed one moved its amount once.
  const transfers = [...acknowledgedTransfers];
  let nextTransfer = 0;
  const lookupTransfer = async () => {
    while (nextTransfer < transfers.length) {
      const [fingerprint, sent] = transfers[nextTransfer++]!;
      const answer = await callRetrying(apiUrl, 'GET', `/transfers/by-fingerprint/${fingerprint}`);
      const parsed = TransferBody.safeParse(answer.body);
      if (answer.status !== 200 || !parsed.success) {
        violations.push(`GET transfer by fingerprint ${fingerprint}: ${answer.status}`);
      } else if (parsed.data.status === 'pending' || parsed.data.status === 'voiding') {
        violations.push(`transfer ${fingerprint} still ${parsed.data.status}`);
      } else if (parsed.data.status === 'voided' && !acknowledgedVoids.has(sent.id)) {
        violations.push(`transfer ${fingerprint} voided, but no void of it was acknowledged`);
      } else if (
        parsed.data.from !== sent.from ||
        parsed.data.to !== sent.to ||
        cents(parsed.data.amount) !== sent.amountCents
      ) {
        violations.push(
          `transfer ${fingerprint}: stored ${parsed.data.from}->${parsed.data.to} ${String(parsed.data.amount)}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, lookupTransfer));
  violations.push(...(await checkHolds(apiUrl, walletIds)));
  return violations;
}

/** How the acknowledged voids and holds ended, for the log. */
const endings = { voids: new Map<string, number>(), holds: new Map<string, number>() };
const countEnding = (counts: Map<string, number>, key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);

/**
 * Each acknowledged void is final: the transfer voided, or still completed with every reversal of
 * its credit rejected (the destination could not cover it).
 */
async function checkVoids(apiUrl: string, pool: DatabasePool): Promise<string[]> {
  const found: string[] = [];
  await inParallel([...acknowledgedVoids], async (transferId) => {
    const answer = await callRetrying(apiUrl, 'GET', `/transfers/${transferId}`);
    const parsed = TransferBody.safeParse(answer.body);
    if (answer.status !== 200 || !parsed.success) {
      found.push(`GET transfer ${transferId} (voided): ${answer.status}`);
      return;
    }
    const reversals = await pool.any(sql.type(z.object({ status: z.string() }))`
      SELECT status FROM transactions
      WHERE transfer_id = ${transferId} AND voids = ${parsed.data.credit ?? null}::uuid
    `);
    const ending =
      parsed.data.status === 'voided'
        ? 'voided'
        : parsed.data.status === 'completed' && reversals.length > 0 && reversals.every((r) => r.status === 'rejected')
          ? 'refused (the destination could not cover it)'
          : null;
    if (ending === null) {
      found.push(
        `void of transfer ${transferId}: transfer ${parsed.data.status}, credit reversals ${reversals.map((r) => r.status).join('/') || 'none'}`,
      );
    } else {
      countEnding(endings.voids, ending);
    }
  });
  return found;
}

/**
 * Each acknowledged hold ended as its client meant (captured for its part, released, expired) or
 * was rejected, and is out of `held`; a capture's debit is applied for the captured amount; every
 * wallet's available is its balance minus its live holds (as listed by the API).
 */
async function checkHolds(apiUrl: string, walletIds: number[]): Promise<string[]> {
  const found: string[] = [];
  const meant = { capture: 'captured', release: 'released', expire: 'expired' } as const;
  await inParallel([...acknowledgedHolds], async ([fingerprint, planned]) => {
    const answer = await callRetrying(apiUrl, 'GET', `/wallets/${planned.walletId}/holds/${planned.holdId}`);
    const parsed = HoldBody.safeParse(answer.body);
    if (answer.status !== 200 || !parsed.success) {
      found.push(`GET hold ${fingerprint}: ${answer.status}`);
      return;
    }
    const hold = parsed.data;
    countEnding(endings.holds, hold.status);
    if (hold.status !== 'rejected' && hold.status !== meant[planned.plan]) {
      found.push(`hold ${fingerprint}: ${hold.status}, meant to be ${meant[planned.plan]}`);
    }
    if (hold.held) found.push(`hold ${fingerprint}: ${hold.status} but still held`);
    if (hold.status === 'captured') {
      if (cents(hold.capturedAmount) !== planned.captureCents) {
        found.push(`hold ${fingerprint}: captured ${String(hold.capturedAmount)}, asked ${planned.captureCents / 100}`);
      }
      const debit = await callRetrying(
        apiUrl,
        'GET',
        `/wallets/${planned.walletId}/transactions/${hold.captureTransactionId ?? 'none'}`,
      );
      const body = TransactionBody.safeParse(debit.body);
      if (!body.success || body.data.status !== 'applied' || cents(body.data.amount) !== -planned.captureCents) {
        found.push(`hold ${fingerprint}: capture debit ${debit.status} ${JSON.stringify(debit.body)}`);
      }
    }
  });
  await inParallel(walletIds, async (walletId) => {
    const wallet = WalletBody.parse((await callRetrying(apiUrl, 'GET', `/wallets/${walletId}`)).body);
    const live = await callRetrying(apiUrl, 'GET', `/wallets/${walletId}/holds?status=active&limit=500`);
    const items = z.object({ items: z.array(HoldBody) }).parse(live.body).items;
    const held = items.filter((hold) => hold.held).reduce((total, hold) => total + cents(hold.amount), 0);
    if (cents(wallet.balance) - held !== cents(wallet.available)) {
      found.push(
        `wallet ${walletId}: available ${String(wallet.available)}, balance ${String(wallet.balance)} minus live holds ${held / 100}`,
      );
    }
  });
  return found;
}

/** Runs `check` over the items, 8 at a time. */
async function inParallel<T>(items: readonly T[], check: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < items.length) await check(items[next++]!);
    }),
  );
}

/** Until the relay's cursor is at the last outbox row (the stream holds every event). */
async function waitUntilRelayed(pool: DatabasePool): Promise<void> {
  const deadline = Date.now() + RECOVERY_BOUND_MS;
  for (;;) {
    const behind = await pool.oneFirst(sql.type(z.object({ behind: z.boolean() }))`
      SELECT EXISTS (
        SELECT 1 FROM outbox o, outbox_relay_cursor c WHERE (o.xid, o.id) > (c.xid, c.id) AND o.kind <> 'journal'
      ) AS behind
    `);
    if (!behind) return;
    if (Date.now() > deadline) {
      violations.push('the relay did not publish every event within 30 s of the drain');
      return;
    }
    await sleep(100);
  }
}

/**
 * CHAOS_SELFTEST: a covered withdrawal turned into a rejection (as a service that read a stale
 * balance would leave it), one BalanceChanged published twice, another one lost. Returns the
 * start of the line each check must report.
 */
async function breakOnPurpose(pool: DatabasePool, redis: RedisClient): Promise<string[]> {
  const victim = await pool.one(sql.type(z.object({ walletId: z.number(), id: z.string(), fingerprint: z.string() }))`
    UPDATE transactions t SET amount = -1
    FROM (
      SELECT wallet_id, seq FROM transactions
      WHERE status = 'rejected' AND reason = 'insufficient_funds' AND oldbalance - coalesce(seen_held, 0) >= 1
        AND transfer_id IS NULL AND hold_id IS NULL AND fingerprint LIKE 'chaos-%' LIMIT 1
    ) r
    WHERE t.wallet_id = r.wallet_id AND t.seq = r.seq
    RETURNING t.wallet_id AS "walletId", transaction_id(t.wallet_id, t.seq)::text AS id, t.fingerprint
  `);
  // A wallet whose held no longer is the sum of its live holds (none are live after the drain);
  // its available stays in range (one of the richest wallets).
  const heldOff = await pool.oneFirst(sql.type(z.object({ id: z.number() }))`
    UPDATE wallets SET held = held + 1
    WHERE id = (SELECT id FROM wallets WHERE id <> ${victim.walletId} ORDER BY balance DESC LIMIT 1)
    RETURNING id
  `);
  const stream = eventStreamKey(QUEUE_PREFIX);
  const changed = (await redis.xrange(stream, '-', '+')).filter(([, fields]) => fields.includes('BalanceChanged'));
  const [twice, lost] = [changed[0]!, changed[changed.length - 1]!];
  await redis.xadd(stream, '*', ...twice[1]);
  await redis.xdel(stream, lost[0]);
  const event = (entry: [string, string[]]) =>
    JSON.parse(entry[1][entry[1].indexOf('event') + 1]!) as {
      id: string;
      walletid: string;
      data: { transactionId: string };
    };
  const [doubled, missing] = [event(twice), event(lost)];
  return [
    // The API shows the amount the client did not send, and the audit replays the rejection.
    `${victim.fingerprint}: stored ${victim.walletId}/-1`,
    `rejection-deserved: wallet ${victim.walletId}, transaction ${victim.id}:`,
    `held-is-sum: wallet ${heldOff}:`,
    // The API shows it too: available is balance minus held.
    `wallet ${heldOff}: available`,
    `event-id-unique: event id ${doubled.id} 2 times`,
    `event-once: wallet ${doubled.walletid}, transaction ${doubled.data.transactionId}: 2 BalanceChanged`,
    `event-once: wallet ${missing.walletid}, transaction ${missing.data.transactionId}: 0 BalanceChanged`,
    // The copy comes last in the stream, after the wallet's later refnos.
    `event-order: wallet ${doubled.walletid}, transaction ${doubled.data.transactionId}: BalanceChanged of refno`,
  ];
}

// --- the run ----------------------------------------------------------------------------------

async function main(): Promise<number> {
  await createDatabaseIfMissing(DATABASE_URL);
  await migrate(DATABASE_URL);
  const pool = await createDatabasePool(loadConfig({ DATABASE_URL, DB_POOL_SIZE: '4' }));
  if (ON_CLUSTER) await redisCluster('start');
  const redis = connectRedis({ REDIS_URL, REDIS_CLUSTER_NODES: undefined }, { maxRetriesPerRequest: null });
  const apiPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const recoveries: { name: string; ms: number; faultMs: number }[] = [];
  try {
    const [api, ...workers] = await Promise.all([
      startService('api', 'api', apiPort),
      startService('worker-a', 'worker', apiPort),
      startService('worker-b', 'worker', apiPort),
    ]);
    const services: Services = { api, workers };
    log(`[${elapsed()}] API and 2 workers up; logs in ${logDir}`);

    const walletIds: number[] = [];
    for (let i = 0; i < WALLETS; i += 1) {
      const answer = await callRetrying(apiUrl, 'POST', '/wallets', { externalId: `chaos-${suffix}-${i}` });
      walletIds.push(z.object({ id: z.number() }).parse(answer.body).id);
    }
    const clients = runClients(apiUrl, walletIds);

    const all = faults(services, apiPort, redis, pool);
    // The process and Redis faults twice, Postgres (shared with other people's tests) once each way.
    const twice = all.filter((fault) => !/Postgres/.test(fault.name));
    const schedule = [...twice, ...all].filter((fault) => POSTGRES_FAULTS || !/Postgres/.test(fault.name));
    for (const fault of schedule) {
      await sleep(LOAD_BETWEEN_FAULTS_MS);
      log(`[${elapsed()}] fault: ${fault.name}`);
      const begun = Date.now();
      const evidence = await fault.inject();
      const ended = Date.now();
      if (evidence === null) violations.push(`${fault.name}: the fault did nothing`);
      else log(`  ${evidence}`);
      // New posts would enqueue their wallets and hide a stuck one: only recovery may finish the rest.
      await clients.pause();
      const ms = await timeUntilFinal(pool, ended);
      clients.resume();
      recoveries.push({ name: fault.name, ms, faultMs: ended - begun });
      const outcome = Number.isFinite(ms) ? `recovered ${(ms / 1000).toFixed(1)} s after it ended` : 'NOT recovered';
      log(`[${elapsed()}] ${fault.name}: lasted ${((ended - begun) / 1000).toFixed(1)} s, ${outcome}`);
      if (!Number.isFinite(ms)) violations.push(`${fault.name}: no recovery within ${RECOVERY_BOUND_MS / 1000} s`);
    }

    await clients.pause();
    await settleRemainingHolds(apiUrl);
    const drained = await timeUntilFinal(pool, Date.now());
    if (!Number.isFinite(drained))
      violations.push('acknowledged transactions still pending 30 s after the load stopped');
    log(
      `[${elapsed()}] load stopped: ${acknowledged.size} transactions, ${acknowledgedTransfers.size} transfers, ${acknowledgedVoids.size} transfer voids and ${acknowledgedHolds.size} holds acknowledged; final checks`,
    );

    await waitUntilRelayed(pool);
    const injected = SELFTEST ? await breakOnPurpose(pool, redis) : [];
    const audit = await auditLedger(pool, { settled: true });
    const found = [
      ...(await checkThroughApi(apiUrl, walletIds)),
      ...(await checkVoids(apiUrl, pool)),
      ...audit.violations.map(describeViolation),
      ...(await auditEventStream(pool, redis, eventStreamKey(QUEUE_PREFIX))).map(describeEventViolation),
    ];
    if (SELFTEST) {
      const missed = injected.filter((expected) => !found.some((line) => line.startsWith(expected)));
      log(
        `selftest: ${injected.length} broken on purpose, ${injected.length - missed.length} found; reported: ${found.length}`,
      );
      for (const line of found) log(`  reported: ${line}`);
      if (missed.length > 0) violations.push(`selftest: not found: ${missed.join('; ')}`);
      if (found.length !== injected.length)
        violations.push(`selftest: ${found.length} reported, ${injected.length} injected`);
    } else {
      violations.push(...found);
    }
    const statuses = await pool.any(sql.type(z.object({ status: z.string(), count: z.number() }))`
      SELECT status, count(*)::int AS count FROM transactions GROUP BY status ORDER BY status
    `);
    log(`transactions: ${statuses.map(({ status, count }) => `${count} ${status}`).join(', ')}`);
    const counted = (counts: Map<string, number>) => [...counts].map(([key, n]) => `${n} ${key}`).join(', ') || 'none';
    log(`transfer voids: ${counted(endings.voids)}`);
    log(`holds: ${counted(endings.holds)}`);
    // A check over nothing proves nothing: every way a void and a hold can end must have happened.
    for (const [kind, counts, wanted] of [
      ['transfer voids', endings.voids, ['voided']],
      ['holds', endings.holds, ['captured', 'released', 'expired']],
    ] as const) {
      for (const ending of wanted) {
        if (!counts.get(ending)) violations.push(`${kind}: none ended ${ending}, so its checks checked nothing`);
      }
    }
    await Promise.all([services.api, ...services.workers].map(stopGracefully));
  } finally {
    for (const child of children) child.kill('SIGKILL');
    await pool.end();
    if (process.env.CHAOS_KEEP === '1') {
      log(`kept the database ${DATABASE_URL} and the Redis prefix ${QUEUE_PREFIX} (CHAOS_KEEP)`);
    } else {
      await deleteKeysWithPrefix(redis, QUEUE_PREFIX);
      await dropDatabase(DATABASE_URL).catch(() => undefined);
    }
    redis.disconnect();
    if (ON_CLUSTER) await redisCluster('stop');
  }

  log('recovery times:');
  for (const { name, ms, faultMs } of recoveries) {
    const recovery = Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : '> 30 s';
    log(`  ${name}: ${recovery} (the fault itself lasted ${(faultMs / 1000).toFixed(1)} s)`);
  }
  for (const violation of violations.slice(0, 50)) log(`violation: ${violation}`);
  log(`total wall time ${elapsed()}`);
  log(`${recoveries.length} faults, ${violations.length} violations`);
  return violations.length === 0 ? 0 : 1;
}

const watchdog = setTimeout(() => {
  log(`chaos run exceeded ${HARD_DEADLINE_MS / 1000} s; killing its processes`);
  for (const child of children) child.kill('SIGKILL');
  log(`0 faults, 1 violations`);
  process.exit(1);
}, HARD_DEADLINE_MS + 8_000);
watchdog.unref();

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    for (const child of children) child.kill('SIGKILL');
    log(`chaos run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    log(`0 faults, 1 violations`);
    process.exit(1);
  },
);
