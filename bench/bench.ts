/**
 * Throughput benchmark of the wallet service against a pgbench ceiling. See docs/benchmarks.md.
 *
 *   npm run bench -- [--quick] [--concurrency 64] [--workers 1] ...
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectRedis, deleteKeysWithPrefix } from '../src/shared/infra/redis.js';
import { dropDatabase } from '../src/shared/infra/migrate.js';
import { connect } from './database.js';
import { databaseUrl, parseOptions, type BenchOptions } from './options.js';
import { measureCeilings, type CeilingResult } from './pgbench.js';
import { runPhase, type Mode, type PhaseResult, type Scenario } from './phase.js';
import {
  costComparisons,
  costTable,
  describePhase,
  modelInputsTable,
  transferTable,
  summarize,
  summaryTable,
  walByTypeTables,
} from './report.js';
import { build, stopAll } from './service.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function scenarios(options: BenchOptions): Scenario[] {
  return [
    {
      name: 'uniform',
      wallets: options.wallets,
      seedAmount: '100.00',
      count: options.uniformCount,
      // No wallet can reach 1,000,000.00 here: those withdrawals must be rejected.
      mix: { withdrawalShare: 0.15, rejectShare: 0.005, rejectAmount: '-1000000.00' },
    },
    {
      name: 'hot',
      wallets: 1,
      seedAmount: '1000000.00',
      count: options.hotCount,
      mix: { withdrawalShare: 0.15, rejectShare: 0.005, rejectAmount: '-100000000.00' },
    },
    {
      // Transfers of 1.00..20.00 between random pairs: each wallet's seed covers its debits.
      name: 'transfers',
      wallets: options.wallets,
      seedAmount: '1000.00',
      count: options.transferCount,
      mix: { withdrawalShare: 0, rejectShare: 0, rejectAmount: '0', transfers: 'random-pairs' },
    },
    {
      // One house wallet paying out to the others (the original's prize pool).
      name: 'hot-source',
      wallets: options.wallets,
      seedAmount: '1000000.00',
      count: options.transferCount,
      mix: { withdrawalShare: 0, rejectShare: 0, rejectAmount: '0', transfers: 'from-first' },
    },
  ];
}

/** Deletes every Redis key of the bench's queue prefixes. */
async function obliterateQueues(redisUrl: string, prefixes: string[]): Promise<number> {
  if (prefixes.length === 0) return 0;
  const redis = connectRedis({ REDIS_URL: redisUrl, REDIS_CLUSTER_NODES: undefined }, { maxRetriesPerRequest: 3 });
  let deleted = 0;
  try {
    for (const prefix of prefixes) deleted += await deleteKeysWithPrefix(redis, prefix);
  } finally {
    redis.disconnect();
  }
  return deleted;
}

function gitRevision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'migrations'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    return dirty ? `${head} (src or migrations modified)` : head;
  } catch {
    return 'unknown';
  }
}

async function postgresVersion(url: string): Promise<string> {
  const db = await connect(url);
  try {
    return (await db.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
  } finally {
    await db.end();
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2), process.env);
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const runPrefix = `bench-${startedAt.getTime()}`;
  const databases = new Set<string>();
  const prefixes: string[] = [];

  let cleaning: Promise<void> | null = null;
  const cleanup = () => {
    cleaning ??= (async () => {
      await stopAll();
      const deleted = await obliterateQueues(options.redisUrl, prefixes).catch((error: unknown) => {
        console.error(`[bench] could not delete the Redis keys of ${prefixes.join(', ')}:`, error);
        return 0;
      });
      if (prefixes.length > 0) console.error(`[bench] deleted ${deleted} Redis keys (${runPrefix}-*)`);
      if (options.keep) {
        if (databases.size > 0) console.error(`[bench] kept databases: ${[...databases].join(', ')}`);
        return;
      }
      for (const url of databases) {
        await dropDatabase(url).catch((error: unknown) => console.error(`[bench] could not drop ${url}:`, error));
      }
    })();
    return cleaning;
  };
  // `on`, not `once`: a second signal (tsx relays the terminal's SIGINT) must not kill us mid-cleanup.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (cleaning) return;
      console.error(`[bench] ${signal}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    if (options.runtime === 'node' && !options.skipBuild) {
      console.log('[bench] npm run build');
      build();
    }
    const ceilingUrl = databaseUrl(options, 'wallet_bench_pgbench');
    const environment = {
      date: startedAt.toISOString(),
      node: process.version,
      postgres: await postgresVersion(databaseUrl(options, 'postgres')),
      cpus: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      loadAverageAtStart: os.loadavg(),
      serviceRevision: gitRevision(),
      serviceSettings: {
        WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY ?? 'default',
        DB_POOL_SIZE: process.env.DB_POOL_SIZE ?? 'default',
        APPLY_BATCH_SIZE: process.env.APPLY_BATCH_SIZE ?? 'default',
      },
    };
    console.log(
      `[bench] ${environment.cpus} cores (${environment.cpuModel}), node ${environment.node}, postgres ${environment.postgres}, ` +
        `load average ${environment.loadAverageAtStart.map((value) => value.toFixed(2)).join(' ')}`,
    );

    console.log(
      `[bench] ceiling: pgbench, ${options.pgbenchClients} clients, ${options.pgbenchSeconds} s per scenario`,
    );
    databases.add(ceilingUrl);
    const ceilings: CeilingResult[] = await measureCeilings(ceilingUrl, {
      seconds: options.pgbenchSeconds,
      clients: options.pgbenchClients,
      keep: options.keep,
    });
    for (const ceiling of ceilings) {
      console.log(
        `  ${ceiling.scenario}: ${ceiling.tps.toFixed(0)} tps, latency average ${String(ceiling.latencyAverageMs)} ms`,
      );
    }

    const phases: PhaseResult[] = [];
    const plan: { mode: Mode; steady: boolean }[] = [
      { mode: 'reference', steady: false },
      { mode: 'end-to-end', steady: false },
      { mode: 'start', steady: false },
      { mode: 'backlog', steady: false },
      ...(options.history > 0
        ? [
            { mode: 'reference' as const, steady: true },
            { mode: 'end-to-end' as const, steady: true },
          ]
        : []),
    ];
    for (const scenario of scenarios(options)) {
      if (options.scenarios.length > 0 && !options.scenarios.includes(scenario.name)) continue;
      for (const { mode, steady } of plan) {
        const label = steady ? `${mode}-steady` : mode;
        if (options.modes.length > 0 && !options.modes.includes(label)) continue;
        // The reference has no queue; the service's phases run once per shard count.
        for (const queueShards of mode === 'reference' ? [1] : options.queueShards) {
          const short = `${mode === 'end-to-end' ? 'e2e' : mode}${steady ? '_steady' : ''}${queueShards > 1 ? `_${queueShards}shards` : ''}`;
          const url = databaseUrl(options, `wallet_bench_${scenario.name}_${short}`);
          const queuePrefix = `${runPrefix}-${scenario.name}-${short}`;
          databases.add(url);
          prefixes.push(queuePrefix);
          console.log(
            `[bench] ${scenario.name} / ${label}${queueShards > 1 ? `, ${queueShards} queue shards` : ''} ...`,
          );
          const phase = await runPhase({
            scenario,
            mode,
            history: steady ? options.history : 0,
            databaseUrl: url,
            redisUrl: options.redisUrl,
            queuePrefix,
            runtime: options.runtime,
            workers: options.workers,
            concurrency: options.concurrency,
            seed: options.seed,
            queueShards,
          });
          phases.push(phase);
          console.log(describePhase(phase));
        }
      }
    }

    // The comparisons with the reference take the service at the first shard count.
    const compared = phases.filter(
      (phase) => phase.mode === 'reference' || phase.queueShards === options.queueShards[0],
    );
    const summaries = summarize(compared, ceilings);
    console.log(`\n${summaryTable(summaries)}`);
    const costs = costComparisons(compared);
    console.log(`\n${costTable(costs)}`);
    const transfers = transferTable(compared);
    if (transfers) console.log(`\n${transfers}`);
    console.log(`\n${modelInputsTable(phases)}`);
    console.log(`\n${walByTypeTables(compared)}`);
    console.log(
      '\napplied/s: n / (first POST to last finalized); reference: the synchronous design (bench/sync-reference.ts) under the same load; ' +
        'backlog/s: n / (worker spawned to last finalized), posted with no worker running.',
    );

    const results = {
      command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
      options,
      environment: { ...environment, loadAverageAtEnd: os.loadavg() },
      ceilings,
      phases,
      summary: summaries,
      costs,
    };
    const dir = path.join(ROOT, 'bench', 'results');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `${stamp}.json`);
    await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`[bench] results written to ${path.relative(ROOT, file)}`);
    if (summaries.some((summary) => !summary.ledgerOk) || phases.some((phase) => !phase.ledger.ok))
      process.exitCode = 2;
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  console.error('[bench] failed:', error);
  process.exitCode = 1;
});
