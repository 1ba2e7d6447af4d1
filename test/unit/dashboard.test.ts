import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { registry } from '../../src/shared/telemetry/metrics.js';

/**
 * The Grafana dashboard and the Prometheus alerts may only query what the service exports: every
 * metric name, and every label used in a selector or a `by (...)`, must exist. A renamed metric
 * breaks this test instead of silently emptying a panel.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; datasource: { uid: string } }[];
}
const dashboard = JSON.parse(read('ops/grafana/dashboards/wallet-service.json')) as { uid: string; panels: Panel[] };
const queryPanels = dashboard.panels.filter((panel) => panel.type !== 'row');
const alertExpressions = [...read('ops/prometheus/alerts.yml').matchAll(/^\s+expr: (.+)$/gm)].map((match) => match[1]!);

/** Labels Prometheus adds to every scraped series, and the bucket label of histograms. */
const TARGET_LABELS = ['job', 'instance', 'le'];
/** Series Prometheus itself makes (not the service). */
const PROMETHEUS_SERIES: Record<string, string[]> = { up: [] };
const PROMQL_WORDS = new Set([
  ...['sum', 'min', 'max', 'avg', 'count', 'rate', 'irate', 'increase', 'histogram_quantile', 'absent', 'topk'],
  ...['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset'],
]);

/** Names (and label names) of everything this process's registry exports, histograms with their series. */
async function exportedSeries(): Promise<Map<string, string[]>> {
  const series = new Map<string, string[]>(Object.entries(PROMETHEUS_SERIES));
  for (const metric of await registry.getMetricsAsJSON()) {
    const labelNames = [
      ...((registry.getSingleMetric(metric.name) as unknown as { labelNames?: string[] }).labelNames ?? []),
    ];
    const names =
      String(metric.type) === 'histogram'
        ? [`${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`]
        : [metric.name];
    for (const name of names) series.set(name, labelNames);
  }
  return series;
}

/** The metric names and label names a PromQL expression refers to. */
function references(expr: string): { metrics: string[]; labels: string[] } {
  let rest = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, '');
  const labels: string[] = [];
  rest = rest.replace(/\b(?:by|without)\s*\(([^)]*)\)/g, (_all, names: string) => {
    labels.push(
      ...names
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean),
    );
    return ' ';
  });
  rest = rest.replace(/\{([^}]*)\}/g, (_all, matchers: string) => {
    labels.push(...[...matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((match) => match[1]!));
    return ' ';
  });
  const metrics = [...rest.matchAll(/[a-zA-Z_:][\w:]*/g)]
    .map((match) => match[0])
    .filter((word) => !PROMQL_WORDS.has(word) && !/^\d/.test(word));
  return { metrics, labels };
}

async function checkExpression(expr: string, where: string): Promise<string[]> {
  const series = await exportedSeries();
  const { metrics, labels } = references(expr);
  const problems: string[] = [];
  if (metrics.length === 0) problems.push(`${where}: no metric in ${expr}`);
  for (const metric of metrics) {
    if (!series.has(metric)) problems.push(`${where}: ${metric} is not exported`);
  }
  const known = new Set([...TARGET_LABELS, ...metrics.flatMap((metric) => series.get(metric) ?? [])]);
  for (const label of labels) {
    if (!known.has(label)) problems.push(`${where}: label ${label} is not on ${metrics.join(', ')}`);
  }
  return problems;
}

describe('Grafana dashboard and Prometheus alerts', () => {
  it('When the dashboard is read, then every panel queries only metrics and labels the service exports', async () => {
    const problems: string[] = [];
    for (const panel of queryPanels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets!) problems.push(...(await checkExpression(target.expr, panel.title)));
    }
    expect(problems).toEqual([]);
  });

  it('When the alert rules are read, then they too query only exported metrics and labels', async () => {
    expect(alertExpressions.length).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const expr of alertExpressions) problems.push(...(await checkExpression(expr, 'alerts.yml')));
    expect(problems).toEqual([]);
  });

  it('When the dashboard is provisioned, then its panels use the provisioned Prometheus datasource and have unique ids', () => {
    expect(read('ops/grafana/provisioning/datasources/datasources.yml')).toMatch(/uid: prometheus\b/);
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of queryPanels) {
      expect(panel.datasource?.uid, panel.title).toBe('prometheus');
      for (const target of panel.targets!) expect(target.datasource.uid).toBe('prometheus');
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
    }
  });

  it('When an operator opens it, then it shows throughput, latencies, queue depth, rejections, errors, outbox lag and pool', () => {
    const everything = queryPanels.flatMap((panel) => panel.targets!.map((target) => target.expr)).join('\n');
    for (const metric of [
      'wallet_transactions_reserved_total',
      'wallet_transactions_applied_total',
      'wallet_transactions_rejected_total',
      'wallet_transactions_voided_total',
      'wallet_http_requests_total',
      'wallet_http_request_duration_seconds_bucket',
      'wallet_transaction_end_to_end_seconds_bucket',
      'wallet_apply_batch_size_bucket',
      'wallet_apply_conflict_retries_total',
      'wallet_queue_jobs',
      'wallet_apply_job_failures_total',
      'wallet_outbox_backlog_events',
      'wallet_outbox_oldest_unpublished_age_seconds',
      'wallet_db_pool_connections',
      'wallet_sweeper_reenqueued_total',
    ]) {
      expect(everything, metric).toContain(metric);
    }
  });

  it('When an expression names a metric that does not exist, then the check reports it', async () => {
    expect(await checkExpression('sum by (route) (rate(wallet_http_request_total[5m]))', 'typo')).toEqual([
      'typo: wallet_http_request_total is not exported',
      'typo: label route is not on wallet_http_request_total',
    ]);
    expect(await checkExpression('sum by (wallet) (rate(wallet_http_requests_total[5m]))', 'label')).toEqual([
      'label: label wallet is not on wallet_http_requests_total',
    ]);
  });
});
