import { formatCpu } from './cpu.js';
import type { CeilingResult } from './pgbench.js';
import type { PhaseResult, Scenario } from './phase.js';

/** Applied/s over the synchronous reference's, per scenario; the targets. */
export const TARGETS: Record<Scenario['name'], number> = { uniform: 2.0, hot: 10 };
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
      phases.find((phase) => phase.scenario === scenario && phase.mode === mode);
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
    `${phase.scenario} / ${phase.mode}: ${phase.count} transactions, ${phase.wallets} wallet(s), concurrency ${phase.concurrency}, ${phase.workers} worker(s)`,
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
    `  ledger ${ledger.ok ? 'OK' : 'BROKEN'}: ${ledger.wallets} wallets, balance mismatches ${ledger.balanceMismatch}, negative ${ledger.negativeBalance}, refno gaps ${ledger.refnoGaps}, bad rows ${ledger.badRows}, broken chain ${ledger.brokenChain}; applied out of seq order (concurrent POSTs, informational) ${ledger.outOfSeqOrder}`,
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
