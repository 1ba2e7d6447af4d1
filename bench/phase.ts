import { cpuSecondsOf, cpuSnapshot, cpuUsage, type CpuUsage } from './cpu.js';
import {
  checkLedger,
  connect,
  createBenchApiKey,
  freshDatabase,
  measuredOutcome,
  measuredReferenceOutcome,
  measuredTransferOutcome,
  postgresPids,
  preloadHistory,
  waitUntilFinal,
  waitUntilRelayed,
  type LedgerCheck,
  type MeasuredOutcome,
} from './database.js';
import { connectRedis } from '../src/shared/infra/redis.js';
import { redisCounters, redisUsage, type RedisUsage } from './redis-stats.js';
import { WalWindow, type WalUsage } from './wal.js';
import { HttpClient } from './http.js';
import {
  createWallets,
  percentile,
  planTransactions,
  postTransactions,
  DECIDED,
  QUEUED,
  seededRandom,
  seedWallets,
  type LoadMix,
} from './load.js';
import { childProcesses, freePort, startService, waitForApi, type Runtime, type ServiceProcess } from './service.js';

export interface Scenario {
  name: 'uniform' | 'hot' | 'transfers' | 'hot-source';
  wallets: number;
  /** Deposit every wallet gets before the measured load. */
  seedAmount: string;
  count: number;
  mix: LoadMix;
}

/**
 * end-to-end: API and workers (separate processes) run while posting. backlog: workers start only
 * once everything is posted. start: `wallet start` (what `npm start` runs) while posting.
 * reference: the synchronous design (bench/sync-reference.ts) under the same load.
 */
export type Mode = 'end-to-end' | 'backlog' | 'start' | 'reference';

export interface PhaseSetup {
  scenario: Scenario;
  mode: Mode;
  /**
   * Steady state: the tables already hold `history` transactions (1,000,000 by default) before
   * the window, and a checkpoint falls inside it, halfway through the posts.
   */
  history: number;
  databaseUrl: string;
  redisUrl: string;
  queuePrefix: string;
  runtime: Runtime;
  workers: number;
  concurrency: number;
  seed: number;
  /** QUEUE_SHARDS for the service (1: one queue, the default). */
  queueShards: number;
}

export interface PhaseResult {
  scenario: Scenario['name'];
  mode: Mode;
  queueShards: number;
  /** Transactions the tables held before the window (0: fresh tables). */
  history: number;
  database: string;
  queuePrefix: string;
  count: number;
  wallets: number;
  concurrency: number;
  workers: number;
  /** Posting: first POST sent to last POST answered. */
  postSeconds: number;
  postedPerSecond: number;
  latencyMs: { p50: number; p99: number; mean: number; max: number };
  /** First POST to the last measured transaction finalized (Postgres max(finalized)). */
  endToEndSeconds: number;
  appliedPerSecond: number;
  /** Last POST answered to last transaction finalized (0 if the worker kept up). */
  drainSeconds: number;
  /** Backlog only: worker processes spawned to last transaction finalized, and n / that. */
  backlogDrainSeconds: number | null;
  workerAppliedPerSecond: number | null;
  /** Backlog only: first to last finalization, which leaves out the worker's start-up. */
  applyWindowSeconds: number | null;
  applyWindowPerSecond: number | null;
  outcome: MeasuredOutcome;
  ledger: LedgerCheck;
  cpu: { posting: CpuUsage; drain: CpuUsage };
  /** WAL the bench database's share of the server wrote from the first POST until all was final (and relayed). */
  wal: WalUsage;
  /** CPU seconds of the bench database's Postgres backends over both windows, by application_name. */
  postgresCpuByApplication: Record<string, number>;
  /** CPU seconds of the API and worker processes over both windows (a capacity model's inputs). */
  processCpuSeconds: { api: number; workers: number };
  /** What Redis did over both windows, from its own counters. */
  redis: RedisUsage;
}

function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

export async function runPhase(setup: PhaseSetup): Promise<PhaseResult> {
  const { scenario, mode } = setup;
  const database = databaseName(setup.databaseUrl);
  const design = mode === 'reference' ? 'reference' : 'service';
  await freshDatabase(setup.databaseUrl, design);
  const apiKey = design === 'service' ? await createBenchApiKey(setup.databaseUrl) : 'none';
  const port = await freePort();
  const env = {
    DATABASE_URL: setup.databaseUrl,
    REDIS_URL: setup.redisUrl,
    QUEUE_PREFIX: setup.queuePrefix,
    QUEUE_SHARDS: String(setup.queueShards),
    PORT: port,
  };
  const together = mode === 'start' || mode === 'reference';
  const startWorkers = () =>
    together
      ? []
      : Array.from({ length: setup.workers }, (_, i) => startService(`worker${i + 1}`, 'worker', setup.runtime, env));

  const api = startService(mode, mode === 'start' || mode === 'reference' ? mode : 'api', setup.runtime, env);
  const accepted = mode === 'reference' ? DECIDED : QUEUED;
  let workers: ServiceProcess[] = startWorkers();
  const workerPids = new Set<number>(workers.map((worker) => worker.pid));
  const serviceDown = () => [api, ...workers].find((service) => service.crashed)?.name ?? null;
  const client = new HttpClient(new URL(`http://127.0.0.1:${port}`), setup.concurrency, {
    authorization: `Bearer ${apiKey}`,
  });
  const db = await connect(setup.databaseUrl);
  const redis = connectRedis(
    { REDIS_URL: setup.redisUrl, REDIS_CLUSTER_NODES: undefined },
    { maxRetriesPerRequest: 3 },
  );
  try {
    await waitForApi(api, client);

    // Setup, not measured: wallets, their history (steady state) and seed deposits, all applied.
    const walletIds = await createWallets(client, scenario.wallets, setup.concurrency, `${scenario.name}-${mode}`);
    if (design === 'service') await waitUntilRelayed(db);
    if (setup.history > 0) await preloadHistory(setup.databaseUrl, design, Math.ceil(setup.history / walletIds.length));
    await seedWallets(client, walletIds, scenario.seedAmount, setup.concurrency, accepted);
    if (design === 'service') {
      await waitUntilFinal(db, serviceDown);
      await waitUntilRelayed(db);
    }
    if (mode === 'backlog') {
      await Promise.all(workers.map((worker) => worker.stop()));
      workers = [];
    }
    const planned = planTransactions(walletIds, scenario.count, scenario.mix, seededRandom(setup.seed));

    const pgPids = await postgresPids(db, database);
    // A checkpoint just before the window: no timed one falls inside it by chance (steady-state
    // phases take one inside on purpose, below), and every phase starts from the same state.
    await db.query('CHECKPOINT');
    const wal = await WalWindow.begin(db);
    const cpuStart = cpuSnapshot();
    const redisStart = await redisCounters(redis);
    // Steady state: a checkpoint halfway, so the window pays the full-page images that follow one.
    const checkpoint = setup.history > 0 ? await connect(setup.databaseUrl) : null;
    // The bench's own sessions (polling, the checkpoint) are not the design's CPU.
    const ownPids = new Set(
      await Promise.all(
        [db, ...(checkpoint ? [checkpoint] : [])].map(async (session) =>
          Number((await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid),
        ),
      ),
    );
    let checkpointed: Promise<unknown> = Promise.resolve();
    const posted = await postTransactions(client, planned, setup.concurrency, accepted, (answered) => {
      if (checkpoint && answered === Math.floor(planned.length / 2)) checkpointed = checkpoint.query('CHECKPOINT');
    });
    const cpuPosted = cpuSnapshot();

    let workersSpawnedAt: number | null = null;
    if (mode === 'backlog') {
      workersSpawnedAt = Date.now();
      workers = startWorkers();
      for (const worker of workers) workerPids.add(worker.pid);
    }
    if (design === 'service') {
      await waitUntilFinal(db, serviceDown);
      await waitUntilRelayed(db);
    }
    await checkpointed;
    await checkpoint?.end();
    const cpuEnd = cpuSnapshot();
    const redisEnd = await redisCounters(redis);
    const walUsage = await wal.end();
    const pgPidsAfter = await postgresPids(db, database);

    const transfers = scenario.mix.transfers !== undefined;
    const outcome =
      design === 'service'
        ? await (transfers ? measuredTransferOutcome(db) : measuredOutcome(db))
        : await measuredReferenceOutcome(db, planned.length);
    const ledger = await checkLedger(db, setup.databaseUrl, design);

    // `wallet start` runs the API and the worker as its children: count each where it belongs.
    const children = mode === 'start' ? childProcesses(api.pid) : [];
    const groups = {
      api: [api.pid, ...children.filter((child) => / api$/.test(child.command.trim())).map((child) => child.pid)],
      workers: [
        ...workerPids,
        ...children.filter((child) => / worker$/.test(child.command.trim())).map((child) => child.pid),
      ],
      postgresBench: [...new Set([...pgPids.bench, ...pgPidsAfter.bench])].filter((pid) => !ownPids.has(pid)),
      postgresBackground: [...new Set([...pgPids.background, ...pgPidsAfter.background])],
    };
    const postSeconds = (posted.finishedAt - posted.startedAt) / 1000;
    const endToEndSeconds = (outcome.lastFinalizedAt - posted.startedAt) / 1000;
    const backlogDrainSeconds = workersSpawnedAt === null ? null : (outcome.lastFinalizedAt - workersSpawnedAt) / 1000;
    const applyWindowSeconds =
      workersSpawnedAt === null ? null : (outcome.lastFinalizedAt - outcome.firstFinalizedAt) / 1000;
    const latencies = posted.latenciesMs;
    return {
      scenario: scenario.name,
      mode,
      queueShards: setup.queueShards,
      history: setup.history,
      database,
      queuePrefix: setup.queuePrefix,
      count: posted.count,
      wallets: scenario.wallets,
      concurrency: setup.concurrency,
      workers: setup.workers,
      postSeconds,
      postedPerSecond: posted.count / postSeconds,
      latencyMs: {
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        mean: latencies.reduce((sum, value) => sum + value, 0) / latencies.length,
        max: percentile(latencies, 100),
      },
      endToEndSeconds,
      appliedPerSecond: posted.count / endToEndSeconds,
      drainSeconds: Math.max(0, (outcome.lastFinalizedAt - posted.finishedAt) / 1000),
      backlogDrainSeconds,
      workerAppliedPerSecond: backlogDrainSeconds === null ? null : posted.count / backlogDrainSeconds,
      applyWindowSeconds,
      applyWindowPerSecond: applyWindowSeconds ? posted.count / applyWindowSeconds : null,
      outcome,
      ledger,
      cpu: { posting: cpuUsage(cpuStart, cpuPosted, groups), drain: cpuUsage(cpuPosted, cpuEnd, groups) },
      wal: walUsage,
      processCpuSeconds: {
        api: cpuSecondsOf(cpuStart, cpuEnd, groups.api),
        workers: cpuSecondsOf(cpuStart, cpuEnd, groups.workers),
      },
      redis: redisUsage(redisStart, redisEnd),
      postgresCpuByApplication: Object.fromEntries(
        [...new Set([...Object.keys(pgPids.byApplication), ...Object.keys(pgPidsAfter.byApplication)])].map((name) => [
          name,
          cpuSecondsOf(
            cpuStart,
            cpuEnd,
            new Set(
              [...(pgPids.byApplication[name] ?? []), ...(pgPidsAfter.byApplication[name] ?? [])].filter(
                (pid) => !ownPids.has(pid),
              ),
            ),
          ),
        ]),
      ),
    };
  } finally {
    client.close();
    redis.disconnect();
    await db.end();
    await Promise.all([api, ...workers].map((service) => service.stop()));
  }
}
