import { formatCpu } from './cpu.js';
import type { CeilingResult } from './pgbench.js';
import type { PhaseResult, Scenario } from './phase.js';

/** Applied/s over the pgbench ceiling that each scenario has to reach. */
export const TARGETS: Record<Scenario['name'], number> = { uniform: 0.35, hot: 1.5 };

export interface ScenarioSummary {
  scenario: Scenario['name'];
  count: number;
  postedPerSecond: number;
  appliedPerSecond: number;
  workerBacklogAppliedPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  drainSeconds: number;
  ceilingTps: number;
  endToEndRatio: number;
  backlogRatio: number;
  target: number;
  endToEndMet: boolean;
  backlogMet: boolean;
  ledgerOk: boolean;
}

export function summarize(phases: PhaseResult[], ceilings: CeilingResult[]): ScenarioSummary[] {
  const summaries: ScenarioSummary[] = [];
  for (const scenario of ['uniform', 'hot'] as const) {
    const endToEnd = phases.find((phase) => phase.scenario === scenario && phase.mode === 'end-to-end');
    const backlog = phases.find((phase) => phase.scenario === scenario && phase.mode === 'backlog');
    const ceiling = ceilings.find((result) => result.scenario === scenario);
    if (!endToEnd || !backlog || !ceiling) continue;
    const workerRate = backlog.workerAppliedPerSecond ?? Number.NaN;
    const target = TARGETS[scenario];
    summaries.push({
      scenario,
      count: endToEnd.count,
      postedPerSecond: endToEnd.postedPerSecond,
      appliedPerSecond: endToEnd.appliedPerSecond,
      workerBacklogAppliedPerSecond: workerRate,
      latencyP50Ms: endToEnd.latencyMs.p50,
      latencyP99Ms: endToEnd.latencyMs.p99,
      drainSeconds: endToEnd.drainSeconds,
      ceilingTps: ceiling.tps,
      endToEndRatio: endToEnd.appliedPerSecond / ceiling.tps,
      backlogRatio: workerRate / ceiling.tps,
      target,
      endToEndMet: endToEnd.appliedPerSecond / ceiling.tps >= target,
      backlogMet: workerRate / ceiling.tps >= target,
      ledgerOk: endToEnd.ledger.ok && backlog.ledger.ok,
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
  if (phase.mode === 'end-to-end') {
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
  const verdict = (met: boolean) => (met ? 'met' : 'missed');
  return table(
    [
      'scenario',
      'n',
      'posted/s',
      'applied/s',
      'backlog/s',
      'p50 ms',
      'p99 ms',
      'drain s',
      'ceiling tps',
      'e2e x',
      'backlog x',
      'target',
      'e2e',
      'backlog',
      'ledger',
    ],
    summaries.map((s) => [
      s.scenario,
      String(s.count),
      round(s.postedPerSecond),
      round(s.appliedPerSecond),
      round(s.workerBacklogAppliedPerSecond),
      round(s.latencyP50Ms, 1),
      round(s.latencyP99Ms, 1),
      round(s.drainSeconds, 2),
      round(s.ceilingTps),
      round(s.endToEndRatio, 2),
      round(s.backlogRatio, 2),
      `>=${s.target}x`,
      verdict(s.endToEndMet),
      verdict(s.backlogMet),
      s.ledgerOk ? 'OK' : 'BROKEN',
    ]),
  );
}
