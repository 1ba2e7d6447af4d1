import { cpuSnapshot, cpuUsage, type CpuUsage } from './cpu.js';
import {
  checkLedger,
  connect,
  createBenchApiKey,
  freshDatabase,
  measuredOutcome,
  postgresPids,
  waitUntilFinal,
  type LedgerCheck,
  type MeasuredOutcome,
} from './database.js';
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
  name: 'uniform' | 'hot';
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
  databaseUrl: string;
  redisUrl: string;
  queuePrefix: string;
  runtime: Runtime;
  workers: number;
  concurrency: number;
  seed: number;
}

export interface PhaseResult {
  scenario: Scenario['name'];
  mode: Mode;
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
}

function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

export async function runPhase(setup: PhaseSetup): Promise<PhaseResult> {
  const { scenario, mode } = setup;
  const database = databaseName(setup.databaseUrl);
  await freshDatabase(setup.databaseUrl);
  const apiKey = await createBenchApiKey(setup.databaseUrl);
  const port = await freePort();
  const env = {
    DATABASE_URL: setup.databaseUrl,
    REDIS_URL: setup.redisUrl,
    QUEUE_PREFIX: setup.queuePrefix,
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
  try {
    await waitForApi(api, client);

    // Setup, not measured: wallets and their seed deposits, all applied.
    const walletIds = await createWallets(client, scenario.wallets, setup.concurrency, `${scenario.name}-${mode}`);
    await seedWallets(client, walletIds, scenario.seedAmount, setup.concurrency, accepted);
    await waitUntilFinal(db, serviceDown);
    if (mode === 'backlog') {
      await Promise.all(workers.map((worker) => worker.stop()));
      workers = [];
    }
    const planned = planTransactions(walletIds, scenario.count, scenario.mix, seededRandom(setup.seed));

    const pgPids = await postgresPids(db, database);
    const cpuStart = cpuSnapshot();
    const posted = await postTransactions(client, planned, setup.concurrency, accepted);
    const cpuPosted = cpuSnapshot();

    let workersSpawnedAt: number | null = null;
    if (mode === 'backlog') {
      workersSpawnedAt = Date.now();
      workers = startWorkers();
      for (const worker of workers) workerPids.add(worker.pid);
    }
    await waitUntilFinal(db, serviceDown);
    const cpuEnd = cpuSnapshot();
    const pgPidsAfter = await postgresPids(db, database);

    const outcome = await measuredOutcome(db);
    const ledger = await checkLedger(db);

    // `wallet start` runs the API and the worker as its children: count each where it belongs.
    const children = mode === 'start' ? childProcesses(api.pid) : [];
    const groups = {
      api: [api.pid, ...children.filter((child) => / api$/.test(child.command.trim())).map((child) => child.pid)],
      workers: [
        ...workerPids,
        ...children.filter((child) => / worker$/.test(child.command.trim())).map((child) => child.pid),
      ],
      postgresBench: [...new Set([...pgPids.bench, ...pgPidsAfter.bench])],
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
    };
  } finally {
    client.close();
    await db.end();
    await Promise.all([api, ...workers].map((service) => service.stop()));
  }
}
