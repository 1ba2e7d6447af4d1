import { formatCpu } from './cpu.js';
import type { CeilingResult } from './pgbench.js';
import type { PhaseResult, Scenario } from './phase.js';
import { perTransaction } from './wal.js';

/** Applied/s over the synchronous reference's, per scenario; the issue's targets. */
export const TARGETS: Record<'uniform' | 'hot', number> = { uniform: 2.0, hot: 10 };
/** Backlog apply rate over the uniform pgbench ceiling. */
export const BACKLOG_TARGET = 3;
/** Uniform, end to end: POST latency (ms) and service CPU per transaction (ms). */
export const LATENCY_TARGETS = { p50: 25, p99: 100 };
export const CPU_TARGET_MS = 1.0;

export interface ScenarioSummary {
  scenario: Scenario['name'];
  count: number;
  referencePerSecond: number;
  appliedPerSecond: number;
  startAppliedPerSecond: number;
  workerBacklogAppliedPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** CPU of API, workers, Postgres and Redis per transaction, end to end (API + workers) and for the reference. */
  cpuMsPerTransaction: number;
  referenceCpuMsPerTransaction: number;
  ceilingTps: number;
  uniformCeilingTps: number;
  endToEndRatio: number;
  startRatio: number;
  backlogRatio: number;
  target: number;
  ledgerOk: boolean;
}

/** CPU seconds of everything that serves the requests (not the load generator), over both windows. */
export function serviceCpuSeconds(phase: PhaseResult): number {
  return [phase.cpu.posting, phase.cpu.drain].reduce(
    (total, usage) => total + usage.api + usage.workers + usage.postgresBench + usage.postgresBackground + usage.redis,
    0,
  );
}

export function summarize(phases: PhaseResult[], ceilings: CeilingResult[]): ScenarioSummary[] {
  const summaries: ScenarioSummary[] = [];
  const uniformCeiling = ceilings.find((result) => result.scenario === 'uniform');
  for (const scenario of ['uniform', 'hot'] as const) {
    const of = (mode: PhaseResult['mode']) =>
      phases.find((phase) => phase.scenario === scenario && phase.mode === mode && phase.history === 0);
    const [reference, endToEnd, start, backlog] = [of('reference'), of('end-to-end'), of('start'), of('backlog')];
    const ceiling = ceilings.find((result) => result.scenario === scenario);
    if (!reference || !endToEnd || !start || !backlog || !ceiling || !uniformCeiling) continue;
    const workerRate = backlog.workerAppliedPerSecond ?? Number.NaN;
    summaries.push({
      scenario,
      count: endToEnd.count,
      referencePerSecond: reference.appliedPerSecond,
      appliedPerSecond: endToEnd.appliedPerSecond,
      startAppliedPerSecond: start.appliedPerSecond,
      workerBacklogAppliedPerSecond: workerRate,
      latencyP50Ms: endToEnd.latencyMs.p50,
      latencyP99Ms: endToEnd.latencyMs.p99,
      cpuMsPerTransaction: (serviceCpuSeconds(endToEnd) * 1000) / endToEnd.count,
      referenceCpuMsPerTransaction: (serviceCpuSeconds(reference) * 1000) / reference.count,
      ceilingTps: ceiling.tps,
      uniformCeilingTps: uniformCeiling.tps,
      endToEndRatio: endToEnd.appliedPerSecond / reference.appliedPerSecond,
      startRatio: start.appliedPerSecond / reference.appliedPerSecond,
      backlogRatio: workerRate / uniformCeiling.tps,
      target: TARGETS[scenario],
      ledgerOk: [reference, endToEnd, start, backlog].every((phase) => phase.ledger.ok),
    });
  }
  return summaries;
}

const round = (value: number | null, digits = 0) => (value === null ? '-' : value.toFixed(digits));

export function describePhase(phase: PhaseResult): string {
  const lines = [
    `${phase.scenario} / ${phase.mode}${phase.history > 0 ? ' (steady state)' : ''}: ${phase.count} transactions, ${phase.wallets} wallet(s), concurrency ${phase.concurrency}, ${phase.workers} worker(s)${phase.queueShards > 1 ? `, ${phase.queueShards} queue shards` : ''}`,
    `  posted ${round(phase.postedPerSecond)}/s in ${round(phase.postSeconds, 2)} s; POST latency p50 ${round(phase.latencyMs.p50, 1)} ms, p99 ${round(phase.latencyMs.p99, 1)} ms, mean ${round(phase.latencyMs.mean, 1)} ms, max ${round(phase.latencyMs.max, 1)} ms`,
  ];
  if (phase.mode !== 'backlog') {
    lines.push(
      `  applied ${round(phase.appliedPerSecond)}/s end to end (${round(phase.endToEndSeconds, 2)} s first POST to last final); drain after last POST ${round(phase.drainSeconds, 2)} s`,
    );
  } else {
    lines.push(
      `  backlog: worker applied ${round(phase.workerAppliedPerSecond)}/s (${round(phase.backlogDrainSeconds, 2)} s from spawning the worker to last final); first to last finalization ${round(phase.applyWindowSeconds, 2)} s = ${round(phase.applyWindowPerSecond)}/s`,
    );
  }
  const outcome = phase.outcome;
  const ledger = phase.ledger;
  lines.push(
    `  outcome: ${outcome.applied} applied, ${outcome.rejected} rejected, ${outcome.pending} pending; must-reject not rejected: ${outcome.mustRejectNotRejected}`,
    `  ledger ${ledger.ok ? 'OK' : 'BROKEN'}: ${ledger.wallets} wallets, balance mismatches ${ledger.balanceMismatch}, negative ${ledger.negativeBalance}, refno gaps ${ledger.refnoGaps}, bad rows ${ledger.badRows}, broken chain ${ledger.brokenChain}; applied out of seq order (concurrent POSTs, informational) ${ledger.outOfSeqOrder}${
      ledger.auditViolations === null
        ? ''
        : `; audit (every rule, deserved rejections included): ${
            Object.entries(ledger.auditViolations)
              .map(([rule, n]) => `${n} ${rule}`)
              .join(', ') || 'no violation'
          }`
    }`,
    `  WAL per transaction: ${round(phase.wal.bytes / phase.count)} bytes (${round(phase.wal.fpiBytes / phase.count)} of full-page images), ${round(phase.wal.records / phase.count, 1)} records, ${round(phase.wal.commits / phase.count, 3)} commits, ${round(phase.wal.indexEntries / phase.count, 2)} index entries${phase.history > 0 ? `; tables held ${phase.history.toLocaleString('en')} transactions before, checkpoint halfway` : ''}`,
    `  Postgres CPU per transaction by client: ${Object.entries(phase.postgresCpuByApplication)
      .map(([name, seconds]) => `${name} ${round((seconds * 1000) / phase.count, 3)} ms`)
      .join(', ')}`,
    `  per transaction: API ${round((phase.processCpuSeconds.api * 1000) / phase.count, 3)} ms, worker(s) ${round((phase.processCpuSeconds.workers * 1000) / phase.count, 3)} ms CPU; Redis ${round((phase.redis.cpuSeconds * 1000) / phase.count, 3)} ms CPU, ${round(phase.redis.commands / phase.count, 2)} commands (${phase.redis.connectedClients} clients connected at the end)`,
    `  cpu while posting (${round(phase.cpu.posting.wallSeconds, 2)} s): ${formatCpu(phase.cpu.posting)}`,
    `  cpu while draining (${round(phase.cpu.drain.wallSeconds, 2)} s): ${formatCpu(phase.cpu.drain)}`,
  );
  return lines.join('\n');
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padStart(widths[column]!)).join('  ');
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

export function summaryTable(summaries: ScenarioSummary[]): string {
  const verdict = (met: boolean) => (met ? 'met' : 'MISSED');
  const rows = summaries.flatMap((s) => {
    const lines = [
      [`${s.scenario}: applied/s, synchronous reference`, round(s.referencePerSecond), ''],
      [`${s.scenario}: applied/s, API + worker processes`, round(s.appliedPerSecond), ''],
      [`${s.scenario}: applied/s, npm start (wallet start)`, round(s.startAppliedPerSecond), ''],
      [
        `${s.scenario}: API + workers / reference (>= ${s.target}x)`,
        `${round(s.endToEndRatio, 2)}x`,
        verdict(s.endToEndRatio >= s.target),
      ],
      [
        `${s.scenario}: npm start / reference (>= ${s.target}x)`,
        `${round(s.startRatio, 2)}x`,
        verdict(s.startRatio >= s.target),
      ],
      [`${s.scenario}: POST p50 / p99 ms`, `${round(s.latencyP50Ms, 1)} / ${round(s.latencyP99Ms, 1)}`, ''],
      [
        `${s.scenario}: CPU ms per transaction, service / reference`,
        `${round(s.cpuMsPerTransaction, 2)} / ${round(s.referenceCpuMsPerTransaction, 2)}`,
        '',
      ],
      [
        `${s.scenario}: backlog/s / uniform ceiling ${round(s.uniformCeilingTps)} tps (>= ${BACKLOG_TARGET}x)`,
        `${round(s.workerBacklogAppliedPerSecond)} = ${round(s.backlogRatio, 2)}x`,
        verdict(s.backlogRatio >= BACKLOG_TARGET),
      ],
      [`${s.scenario}: ledger checks`, s.ledgerOk ? 'OK' : 'BROKEN', ''],
    ];
    if (s.scenario === 'uniform') {
      lines.splice(6, 0, [
        `uniform: latency targets p50 <= ${LATENCY_TARGETS.p50}, p99 <= ${LATENCY_TARGETS.p99} ms`,
        '',
        verdict(s.latencyP50Ms <= LATENCY_TARGETS.p50 && s.latencyP99Ms <= LATENCY_TARGETS.p99),
      ]);
      lines.splice(8, 0, [
        `uniform: CPU per transaction <= ${CPU_TARGET_MS} ms`,
        '',
        verdict(s.cpuMsPerTransaction <= CPU_TARGET_MS),
      ]);
    }
    return lines;
  });
  return table(['figure', 'value', 'target'], rows);
}

/**
 * What one transaction costs the Postgres primary, the service (API + worker, end to end) beside
 * the synchronous reference under the same load: WAL, full-page images, Postgres CPU, commits and
 * index entries per transaction. The goals (issue "Write each transaction once"): uniform, WAL at
 * most 1.5x and Postgres CPU at most 0.5x the reference's; hot wallet, both below the reference's.
 */
export const COST_GOALS: Record<'uniform' | 'hot', { wal: number; cpu: number }> = {
  uniform: { wal: 1.5, cpu: 0.5 },
  hot: { wal: 1.0, cpu: 1.0 },
};

export interface DesignCost {
  walBytes: number;
  fpiBytes: number;
  /** Postgres backends of the bench database plus Postgres' background processes. */
  postgresCpuMs: number;
  /** Backends of the bench database only (background work is shared with anything else running). */
  postgresBackendCpuMs: number;
  commits: number;
  indexEntries: number;
  heapInserts: number;
  heapUpdates: number;
  hotUpdates: number;
  heapDeletes: number;
  rowLocks: number;
}

export interface CostComparison {
  scenario: Scenario['name'];
  state: 'fresh' | 'steady';
  history: number;
  reference: DesignCost;
  service: DesignCost;
  walRatio: number;
  cpuRatio: number;
  walGoal: number;
  cpuGoal: number;
}

function designCost(phase: PhaseResult): DesignCost {
  const wal = perTransaction(phase.wal, phase.count);
  const cpu = (pick: (usage: PhaseResult['cpu']['posting']) => number) =>
    ((pick(phase.cpu.posting) + pick(phase.cpu.drain)) * 1000) / phase.count;
  return {
    walBytes: wal.bytes,
    fpiBytes: wal.fpiBytes,
    postgresCpuMs: cpu((usage) => usage.postgresBench + usage.postgresBackground),
    postgresBackendCpuMs: cpu((usage) => usage.postgresBench),
    commits: wal.commits,
    indexEntries: wal.indexEntries,
    heapInserts: wal.heapInserts,
    heapUpdates: wal.heapUpdates,
    hotUpdates: wal.hotUpdates,
    heapDeletes: wal.heapDeletes,
    rowLocks: wal.rowLocks,
  };
}

export function costComparisons(phases: PhaseResult[]): CostComparison[] {
  const comparisons: CostComparison[] = [];
  for (const scenario of ['uniform', 'hot'] as const) {
    for (const state of ['fresh', 'steady'] as const) {
      const of = (mode: PhaseResult['mode']) =>
        phases.find(
          (phase) =>
            phase.scenario === scenario && phase.mode === mode && (state === 'fresh') === (phase.history === 0),
        );
      const [reference, service] = [of('reference'), of('end-to-end')];
      if (!reference || !service) continue;
      const [referenceCost, serviceCost] = [designCost(reference), designCost(service)];
      comparisons.push({
        scenario,
        state,
        history: service.history,
        reference: referenceCost,
        service: serviceCost,
        walRatio: serviceCost.walBytes / referenceCost.walBytes,
        cpuRatio: serviceCost.postgresCpuMs / referenceCost.postgresCpuMs,
        walGoal: COST_GOALS[scenario].wal,
        cpuGoal: COST_GOALS[scenario].cpu,
      });
    }
  }
  return comparisons;
}

export function costTable(comparisons: CostComparison[]): string {
  const verdict = (ratio: number, goal: number, strict: boolean) =>
    (strict ? ratio < goal : ratio <= goal) ? 'met' : `MISSED by ${((ratio / goal - 1) * 100).toFixed(0)} %`;
  const rows = comparisons.flatMap((c) => {
    const name = `${c.scenario}, ${c.state === 'fresh' ? 'fresh tables' : `steady (${c.history.toLocaleString('en')} rows, checkpoint inside)`}`;
    const strict = c.scenario === 'hot';
    const figure = (label: string, pick: (cost: DesignCost) => number, digits: number) => [
      `${name}: ${label}`,
      round(pick(c.reference), digits),
      round(pick(c.service), digits),
      `${round(pick(c.service) / pick(c.reference), 2)}x`,
      '',
    ];
    return [
      [
        `${name}: WAL bytes`,
        round(c.reference.walBytes),
        round(c.service.walBytes),
        `${round(c.walRatio, 2)}x`,
        `${strict ? '<' : '<='} ${c.walGoal}x: ${verdict(c.walRatio, c.walGoal, strict)}`,
      ],
      figure('full-page image bytes', (cost) => cost.fpiBytes, 0),
      [
        `${name}: Postgres CPU ms`,
        round(c.reference.postgresCpuMs, 3),
        round(c.service.postgresCpuMs, 3),
        `${round(c.cpuRatio, 2)}x`,
        `${strict ? '<' : '<='} ${c.cpuGoal}x: ${verdict(c.cpuRatio, c.cpuGoal, strict)}`,
      ],
      figure('Postgres CPU ms, bench backends only', (cost) => cost.postgresBackendCpuMs, 3),
      figure('commits', (cost) => cost.commits, 3),
      figure('index entries', (cost) => cost.indexEntries, 2),
      figure('heap inserts', (cost) => cost.heapInserts, 2),
      figure('heap updates, not HOT', (cost) => cost.heapUpdates, 2),
      figure('heap updates, HOT', (cost) => cost.hotUpdates, 2),
      figure('heap deletes', (cost) => cost.heapDeletes, 2),
      figure('row locks', (cost) => cost.rowLocks, 2),
    ];
  });
  return [
    'Cost per transaction on the Postgres primary (WAL from pg_walinspect, CPU from /proc):',
    table(['figure', 'reference', 'service', 'ratio', 'goal'], rows),
  ].join('\n');
}

/**
 * Transfers beside the reference doing both legs in one database transaction (both rows locked in
 * id order): applied/s and what each transfer costs the primary. The hot source (one house wallet
 * paying the others) must beat the reference by at least the margin the hot wallet does.
 */
export function transferTable(phases: PhaseResult[]): string {
  const fresh = (scenario: Scenario['name'], mode: PhaseResult['mode']) =>
    phases.find((phase) => phase.scenario === scenario && phase.mode === mode && phase.history === 0);
  const margin = (scenario: Scenario['name']) => {
    const [reference, service] = [fresh(scenario, 'reference'), fresh(scenario, 'end-to-end')];
    return reference && service ? service.appliedPerSecond / reference.appliedPerSecond : null;
  };
  const rows = (['transfers', 'hot-source'] as const).flatMap((scenario) => {
    const [reference, service] = [fresh(scenario, 'reference'), fresh(scenario, 'end-to-end')];
    if (!reference || !service) return [];
    const [referenceCost, serviceCost] = [designCost(reference), designCost(service)];
    const ratio = margin(scenario)!;
    const hot = margin('hot');
    const goal =
      scenario === 'hot-source' && hot !== null
        ? `>= hot wallet's ${round(hot, 2)}x: ${ratio >= hot ? 'met' : `MISSED by ${((1 - ratio / hot) * 100).toFixed(0)} %`}`
        : '';
    return [
      [
        `${scenario}: applied/s`,
        round(reference.appliedPerSecond),
        round(service.appliedPerSecond),
        `${round(ratio, 2)}x`,
        goal,
      ],
      [
        `${scenario}: WAL bytes per transfer`,
        round(referenceCost.walBytes),
        round(serviceCost.walBytes),
        `${round(serviceCost.walBytes / referenceCost.walBytes, 2)}x`,
        '',
      ],
      [
        `${scenario}: Postgres CPU ms per transfer`,
        round(referenceCost.postgresCpuMs, 3),
        round(serviceCost.postgresCpuMs, 3),
        `${round(serviceCost.postgresCpuMs / referenceCost.postgresCpuMs, 2)}x`,
        '',
      ],
      [
        `${scenario}: outcome`,
        `${reference.outcome.applied} completed`,
        `${service.outcome.applied} completed, ${service.outcome.rejected} rejected, ${service.outcome.pending} pending`,
        '',
        '',
      ],
    ];
  });
  if (rows.length === 0) return '';
  return [
    'Transfers, fresh tables (reference: both legs in one database transaction):',
    table(['figure', 'reference', 'service', 'ratio', 'goal'], rows),
  ].join('\n');
}

/**
 * What each transaction costs every part, per phase: the inputs of a capacity model
 * (docs/scaling.md). Postgres is the backends serving the bench database; Redis is the whole server.
 */
export function modelInputsTable(phases: PhaseResult[]): string {
  const perTransactionMs = (seconds: number, phase: PhaseResult) => round((seconds * 1000) / phase.count, 3);
  const rows = phases.map((phase) => {
    const postgresSeconds = Object.values(phase.postgresCpuByApplication).reduce((sum, seconds) => sum + seconds, 0);
    return [
      `${phase.scenario} / ${phase.mode}${phase.history > 0 ? ' (steady)' : ''}${phase.queueShards > 1 ? `, ${phase.queueShards} shards` : ''}`,
      perTransactionMs(phase.processCpuSeconds.api, phase),
      perTransactionMs(phase.processCpuSeconds.workers, phase),
      perTransactionMs(postgresSeconds, phase),
      perTransactionMs(phase.redis.cpuSeconds, phase),
      round(phase.redis.commands / phase.count, 2),
      phase.redis.byCommand
        .slice(0, 4)
        .map((entry) => `${entry.command} ${round(entry.calls / phase.count, 2)}`)
        .join(', '),
    ];
  });
  return [
    "CPU ms and Redis commands per transaction, by part (a capacity model's inputs; Redis counters are the whole server's):",
    table(['phase', 'API ms', 'worker ms', 'Postgres ms', 'Redis ms', 'Redis cmds', 'most called'], rows),
  ].join('\n');
}

/** WAL by record type per transaction, the reference beside the service, for every compared state. */
export function walByTypeTables(phases: PhaseResult[]): string {
  const sections: string[] = [];
  for (const scenario of ['uniform', 'hot'] as const) {
    for (const steady of [false, true]) {
      const of = (mode: PhaseResult['mode']) =>
        phases.find((phase) => phase.scenario === scenario && phase.mode === mode && steady === phase.history > 0);
      const [reference, service] = [of('reference'), of('end-to-end')];
      if (!reference || !service) continue;
      const types = [...new Set([...reference.wal.byType, ...service.wal.byType].map((row) => row.type))];
      const per = (phase: PhaseResult, type: string) => {
        const row = phase.wal.byType.find((entry) => entry.type === type);
        return row
          ? { count: row.count / phase.count, bytes: row.bytes / phase.count, fpi: row.fpiBytes / phase.count }
          : { count: 0, bytes: 0, fpi: 0 };
      };
      const rows = types
        .map((type) => ({ type, reference: per(reference, type), service: per(service, type) }))
        .filter((row) => row.reference.bytes + row.service.bytes >= 0.5)
        .sort((a, b) => b.service.bytes + b.reference.bytes - (a.service.bytes + a.reference.bytes))
        .map((row) => [
          row.type,
          round(row.reference.count, 2),
          round(row.reference.bytes, 1),
          round(row.reference.fpi, 1),
          round(row.service.count, 2),
          round(row.service.bytes, 1),
          round(row.service.fpi, 1),
        ]);
      const relations = (phase: PhaseResult) =>
        phase.wal.byRelation
          .filter((row) => row.bytes / phase.count >= 2)
          .map((row) => [
            row.relation,
            row.type,
            round(row.count / phase.count, 2),
            round(row.bytes / phase.count, 1),
            round(row.fpiBytes / phase.count, 1),
          ]);
      const relationHeader = ['relation', 'record type', 'records', 'bytes', 'FPI'];
      sections.push(
        `WAL by relation per transaction, ${scenario}, ${steady ? 'steady state' : 'fresh tables'}, reference:\n${table(
          relationHeader,
          relations(reference),
        )}\nservice:\n${table(relationHeader, relations(service))}`,
      );
      sections.push(
        `WAL by record type per transaction, ${scenario}, ${steady ? 'steady state' : 'fresh tables'}:\n${table(
          ['record type', 'ref. records', 'ref. bytes', 'ref. FPI', 'svc. records', 'svc. bytes', 'svc. FPI'],
          rows,
        )}`,
      );
    }
  }
  return sections.join('\n\n');
}
