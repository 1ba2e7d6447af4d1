import { parseArgs } from 'node:util';

export interface BenchOptions {
  concurrency: number;
  uniformCount: number;
  hotCount: number;
  /** Transfers of each transfer scenario. */
  transferCount: number;
  wallets: number;
  workers: number;
  pgbenchSeconds: number;
  pgbenchClients: number;
  /** Base Postgres URL; only its host, port and user are used: the bench picks its own database names. */
  postgresUrl: string;
  redisUrl: string;
  runtime: 'node' | 'tsx';
  skipBuild: boolean;
  keep: boolean;
  quick: boolean;
  seed: number;
  /** Transactions the steady-state phases preload before their window (0: no steady-state phases). */
  history: number;
  /** Only these scenarios and modes (all when empty). */
  scenarios: string[];
  modes: string[];
  /** The service's phases run once per queue shard count (QUEUE_SHARDS); the first is compared with the reference. */
  queueShards: number[];
}

const HELP = `Usage: npm run bench -- [flags]

  --concurrency N       HTTP requests in flight while posting (default 64; env BENCH_CONCURRENCY)
  --uniform-count N     transactions of the uniform scenario (default 20000; env BENCH_UNIFORM_COUNT)
  --hot-count N         transactions of the hot-wallet scenario (default 5000; env BENCH_HOT_COUNT)
  --transfer-count N    transfers of the transfers and hot-source scenarios (default 10000; env BENCH_TRANSFER_COUNT)
  --wallets N           wallets of the uniform scenario (default 1000; env BENCH_WALLETS)
  --workers N           worker processes (default 1; env BENCH_WORKERS)
  --pgbench-seconds N   duration of each pgbench ceiling run (default 15; env BENCH_PGBENCH_SECONDS)
  --pgbench-clients N   pgbench clients (default 8; env BENCH_PGBENCH_CLIENTS)
  --postgres-url URL    server to use (default postgres://postgres@127.0.0.1:5432; env BENCH_POSTGRES_URL)
  --redis-url URL       Redis to use (default redis://127.0.0.1:6379; env BENCH_REDIS_URL)
  --runtime node|tsx    node runs dist/ after npm run build (default); tsx runs src/ directly
  --skip-build          with --runtime node, use dist/ as it is
  --keep                keep the bench databases afterwards
  --quick               small counts for a smoke run
  --seed N              seed of the pseudo-random load (default 1)
  --history N           steady state: transactions already in the tables before the window of the
                        steady-state phases (default 1000000, quick 20000; 0 skips them; env BENCH_HISTORY)
  --scenarios a,b       only these scenarios (uniform, hot, transfers, hot-source)
  --modes a,b           only these phases (reference, end-to-end, start, backlog, reference-steady, end-to-end-steady)
  --queue-shards a,b    run the service's phases once per QUEUE_SHARDS value (default 1); the first is the one
                        compared with the reference (env BENCH_QUEUE_SHARDS)
  --help

The service's own settings (WORKER_CONCURRENCY, DB_POOL_SIZE, APPLY_BATCH_SIZE) pass through the environment.`;

function positiveInteger(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new Error(`${name} must be a positive integer, got "${value}"`);
  return Number(value);
}

function nonNegativeInteger(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  if (!/^\d+$/.test(value)) throw new Error(`${name} must be a non-negative integer, got "${value}"`);
  return Number(value);
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      concurrency: { type: 'string' },
      'uniform-count': { type: 'string' },
      'hot-count': { type: 'string' },
      'transfer-count': { type: 'string' },
      wallets: { type: 'string' },
      workers: { type: 'string' },
      'pgbench-seconds': { type: 'string' },
      'pgbench-clients': { type: 'string' },
      'postgres-url': { type: 'string' },
      'redis-url': { type: 'string' },
      runtime: { type: 'string' },
      'skip-build': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      seed: { type: 'string' },
      history: { type: 'string' },
      scenarios: { type: 'string' },
      modes: { type: 'string' },
      'queue-shards': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const quick = values.quick;
  const runtime = values.runtime ?? env.BENCH_RUNTIME ?? 'node';
  if (runtime !== 'node' && runtime !== 'tsx') throw new Error(`--runtime must be node or tsx, got "${runtime}"`);
  return {
    concurrency: positiveInteger('--concurrency', values.concurrency ?? env.BENCH_CONCURRENCY, 64),
    uniformCount: positiveInteger(
      '--uniform-count',
      values['uniform-count'] ?? env.BENCH_UNIFORM_COUNT,
      quick ? 2000 : 20_000,
    ),
    hotCount: positiveInteger('--hot-count', values['hot-count'] ?? env.BENCH_HOT_COUNT, quick ? 500 : 5000),
    transferCount: positiveInteger(
      '--transfer-count',
      values['transfer-count'] ?? env.BENCH_TRANSFER_COUNT,
      quick ? 1000 : 10_000,
    ),
    wallets: positiveInteger('--wallets', values.wallets ?? env.BENCH_WALLETS, quick ? 100 : 1000),
    workers: positiveInteger('--workers', values.workers ?? env.BENCH_WORKERS, 1),
    pgbenchSeconds: positiveInteger(
      '--pgbench-seconds',
      values['pgbench-seconds'] ?? env.BENCH_PGBENCH_SECONDS,
      quick ? 3 : 15,
    ),
    pgbenchClients: positiveInteger('--pgbench-clients', values['pgbench-clients'] ?? env.BENCH_PGBENCH_CLIENTS, 8),
    postgresUrl: values['postgres-url'] ?? env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432',
    redisUrl: values['redis-url'] ?? env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
    runtime,
    skipBuild: values['skip-build'],
    keep: values.keep,
    quick,
    seed: positiveInteger('--seed', values.seed ?? env.BENCH_SEED, 1),
    history: nonNegativeInteger('--history', values.history ?? env.BENCH_HISTORY, quick ? 20_000 : 1_000_000),
    scenarios: list(values.scenarios),
    modes: list(values.modes),
    queueShards: (list(values['queue-shards'] ?? env.BENCH_QUEUE_SHARDS).length > 0
      ? list(values['queue-shards'] ?? env.BENCH_QUEUE_SHARDS)
      : ['1']
    ).map((value) => positiveInteger('--queue-shards', value, 1)),
  };
}

/** The URL of `database` on the bench's Postgres server. */
export function databaseUrl(options: Pick<BenchOptions, 'postgresUrl'>, database: string): string {
  const url = new URL(options.postgresUrl);
  url.pathname = `/${database}`;
  return url.toString();
}
