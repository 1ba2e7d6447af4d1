/**
 * Draws docs/dashboard.png: the panels of ops/grafana/dashboards/wallet-service.json, from a real
 * local run, queried with the dashboard's own PromQL.
 *
 *   npx tsx ops/render-dashboard.ts [--seconds 150] [--out docs/dashboard.png]
 *
 * Needs Postgres and Redis (as for the tests), the `prometheus` binary (Debian: apt-get install
 * prometheus) and `chromium`. It creates the database wallet_dashboard_render, runs the API and two
 * workers as processes, a throwaway Prometheus scraping them every 2 s, drives a load with
 * deposits, overdrawing withdrawals, retries (409), voids, unknown wallets (404) and a 20 s
 * stop of every worker (the queue fills, then drains), then evaluates each panel's expressions
 * over the run (query_range), writes an HTML page with inline SVG charts and screenshots it with
 * headless Chromium. Everything it started is stopped and the database dropped at the end.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { deleteKeysWithPrefix } from '../src/shared/infra/redis.js';
import { createDatabaseIfMissing, dropDatabase, migrate } from '../src/shared/infra/migrate.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '150' },
    out: { type: 'string', default: 'docs/dashboard.png' },
    'api-port': { type: 'string', default: '3190' },
    'prometheus-port': { type: 'string', default: '9099' },
  },
});
const RUN_SECONDS = Number(args.seconds);
const API_PORT = Number(args['api-port']);
const PROMETHEUS_PORT = Number(args['prometheus-port']);
const WORKER_PORTS = [9591, 9592];
const SCRAPE_SECONDS = 2;
const RATE_INTERVAL = '10s'; // Grafana's $__rate_interval for a 2 s scrape: at least 4 scrapes
const DATABASE_URL = process.env.RENDER_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/wallet_dashboard_render';
const API = `http://127.0.0.1:${API_PORT}`;

interface Target {
  expr: string;
  legendFormat: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  fieldConfig?: { defaults?: { unit?: string } };
}
interface Series {
  label: string;
  points: [number, number][];
}

const children: ChildProcess[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function start(command: string, argv: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(command, argv, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-2000)));
  child.once('exit', (code) => {
    if (code && !stopping) console.error(`${command} ${argv.join(' ')} exited ${code}: ${errors}`);
  });
  children.push(child);
  return child;
}
let stopping = false;

const serviceEnv = {
  DATABASE_URL,
  QUEUE_PREFIX: 'dashboard_render',
  LOG_LEVEL: 'warn',
  HOST: '127.0.0.1',
  AUTH_DISABLED: 'true', // a local run on loopback; the render needs no API keys
  RATE_LIMIT_PER_SECOND: '0',
  DB_POOL_SIZE: '8',
  SWEEP_STALE_AFTER_MS: '5000',
};

function startService(role: 'api' | 'worker', env: Record<string, string>) {
  return start(process.execPath, ['--import', 'tsx', 'src/cli.ts', role], { ...serviceEnv, ...env });
}

async function waitFor(url: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not come up`);
    await sleep(200);
  }
}

async function post(pathname: string, body: unknown) {
  const response = await fetch(API + pathname, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json().catch(() => null)) as Record<string, unknown> | null };
}

/** Requests in the shape of real traffic, `concurrency()` at a time, until `until`. */
async function drive(walletIds: number[], until: number, concurrency: () => number) {
  const applied: { walletId: number; id: string }[] = [];
  let inFlight = 0;
  const one = async () => {
    const roll = Math.random();
    const hot = Math.random() < 0.3;
    const walletId = hot ? walletIds[0]! : walletIds[1 + Math.floor(Math.random() * (walletIds.length - 1))]!;
    if (roll < 0.6) {
      const posted = await post(`/wallets/${walletId}/transactions`, {
        amount: (1 + Math.floor(Math.random() * 5000) / 100).toFixed(2),
        fingerprint: randomUUID(),
      });
      if (posted.status === 202 && posted.body && Math.random() < 0.05) {
        applied.push({ walletId, id: String(posted.body.id) });
      }
    } else if (roll < 0.8) {
      await post(`/wallets/${walletId}/transactions`, {
        amount: `-${(1 + Math.floor(Math.random() * 9000) / 100).toFixed(2)}`,
        fingerprint: randomUUID(),
      });
    } else if (roll < 0.87) {
      const fingerprint = randomUUID();
      await post(`/wallets/${walletId}/transactions`, { amount: '5.00', fingerprint });
      await post(`/wallets/${walletId}/transactions`, { amount: '5.00', fingerprint }); // a retry: 409
    } else if (roll < 0.95) {
      await fetch(`${API}/wallets/${walletId}/balance`).then((response) => response.text());
    } else if (roll < 0.98) {
      await fetch(`${API}/wallets/${1_000_000 + walletId}`).then((response) => response.text()); // 404
    } else {
      const target = applied.shift();
      if (target) await post(`/wallets/${target.walletId}/transactions/${target.id}/void`, { reason: 'render' });
    }
  };
  await new Promise<void>((resolve) => {
    const pump = () => {
      if (Date.now() >= until) {
        if (inFlight === 0) resolve();
        return;
      }
      while (inFlight < concurrency()) {
        inFlight += 1;
        one()
          .catch(() => undefined)
          .finally(() => {
            inFlight -= 1;
            pump();
          });
      }
    };
    pump();
    const timer = setInterval(() => {
      pump();
      if (Date.now() >= until && inFlight === 0) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
  });
}

async function queryRange(expr: string, startS: number, endS: number): Promise<Series[]> {
  const url = new URL(`http://127.0.0.1:${PROMETHEUS_PORT}/api/v1/query_range`);
  url.searchParams.set('query', expr.replaceAll('$__rate_interval', RATE_INTERVAL));
  url.searchParams.set('start', String(startS));
  url.searchParams.set('end', String(endS));
  url.searchParams.set('step', String(SCRAPE_SECONDS));
  const answer = (await (await fetch(url)).json()) as {
    status: string;
    error?: string;
    data: { result: { metric: Record<string, string>; values: [number, string][] }[] };
  };
  if (answer.status !== 'success') throw new Error(`${expr}: ${answer.error}`);
  return answer.data.result.map((result) => ({
    label: JSON.stringify(result.metric),
    metric: result.metric,
    points: result.values.map(([t, v]) => [t, Number(v)] as [number, number]).filter(([, v]) => Number.isFinite(v)),
  }));
}

function legend(format: string, metric: Record<string, string>): string {
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_all, name: string) => metric[name] ?? '');
}

function formatValue(value: number, unit: string | undefined): string {
  if (!Number.isFinite(value)) return '-';
  switch (unit) {
    case 's':
      return value < 1 ? `${(value * 1000).toFixed(value < 0.01 ? 1 : 0)} ms` : `${value.toFixed(2)} s`;
    case 'bytes':
      return `${(value / 1024 / 1024).toFixed(0)} MiB`;
    case 'percentunit':
      return `${(value * 100).toFixed(0)}%`;
    case 'ops':
    case 'reqps':
      return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)}/s`;
    default:
      return value >= 100 ? value.toFixed(0) : String(Math.round(value * 10) / 10);
  }
}

const COLORS = [
  '#73bf69',
  '#f2cc0c',
  '#5794f2',
  '#ff780a',
  '#f2495c',
  '#b877d9',
  '#8ab8ff',
  '#ffb357',
  '#96d98d',
  '#ca95e5',
];
const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function chart(series: Series[], width: number, height: number, unit: string | undefined, t0: number, t1: number) {
  const pad = { left: 58, right: 8, top: 6, bottom: 18 };
  const all = series.flatMap((s) => s.points.map(([, v]) => v));
  const max = Math.max(...all, 0) * 1.1 || 1;
  const x = (t: number) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v: number) => pad.top + (1 - v / max) * (height - pad.top - pad.bottom);
  const grid = [0, 0.5, 1]
    .map((f) => {
      const v = max * f;
      return `<line x1="${pad.left}" x2="${width - pad.right}" y1="${y(v)}" y2="${y(v)}" stroke="#2c3235"/>
        <text x="${pad.left - 4}" y="${y(v) + 4}" text-anchor="end">${escape(formatValue(v, unit))}</text>`;
    })
    .join('');
  const minutes = [];
  for (let t = Math.ceil(t0 / 30) * 30; t <= t1; t += 30) {
    const label = new Date(t * 1000).toISOString().slice(11, 19);
    minutes.push(`<text x="${x(t)}" y="${height - 4}" text-anchor="middle">${label}</text>`);
  }
  const lines = series
    .map((s, i) => {
      // A gap in the data (a stopped process) is a gap in the line, not a straight bridge.
      const d = s.points
        .map(([t, v], j) => {
          const move = j === 0 || t - s.points[j - 1]![0] > 3 * SCRAPE_SECONDS;
          return `${move ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        })
        .join('');
      return `<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5"/>`;
    })
    .join('');
  return `<svg width="${width}" height="${height}">${grid}${minutes.join('')}${lines}</svg>`;
}

async function render(panels: Panel[], t0: number, t1: number): Promise<string> {
  const COL = 1400 / 24;
  const ROW = 30;
  const blocks: string[] = [];
  for (const panel of panels) {
    const { x, y, w, h } = panel.gridPos;
    const style = `left:${x * COL + 4}px;top:${y * ROW + 50}px;width:${w * COL - 8}px;height:${h * ROW - 8}px`;
    if (panel.type === 'row') {
      blocks.push(`<div class="row" style="${style}">${escape(panel.title)}</div>`);
      continue;
    }
    const unit = panel.fieldConfig?.defaults?.unit;
    const series: Series[] = [];
    for (const target of panel.targets ?? []) {
      for (const result of (await queryRange(target.expr, t0, t1)) as (Series & { metric: Record<string, string> })[]) {
        series.push({ label: legend(target.legendFormat, result.metric), points: result.points });
      }
    }
    const innerWidth = w * COL - 24;
    if (panel.type === 'stat') {
      const last = series[0]?.points.at(-1)?.[1] ?? NaN;
      blocks.push(`<div class="panel" style="${style}"><div class="title">${escape(panel.title)}</div>
        <div class="stat">${escape(formatValue(last, unit))}</div>
        <div class="spark">${chart(series.slice(0, 1), innerWidth, 40, undefined, t0, t1).replace(/<text[^>]*>[^<]*<\/text>/g, '')}</div></div>`);
      continue;
    }
    const legendHtml = series
      .slice(0, 10)
      .map((s, i) => {
        const last = s.points.at(-1)?.[1];
        return `<span><i style="background:${COLORS[i % COLORS.length]}"></i>${escape(s.label)} ${last === undefined ? '' : `<b>${escape(formatValue(last, unit))}</b>`}</span>`;
      })
      .join('');
    const chartHeight = h * ROW - 8 - 28 - 34;
    blocks.push(`<div class="panel" style="${style}"><div class="title">${escape(panel.title)}</div>
      ${series.length === 0 ? '<div class="empty">No data</div>' : chart(series, innerWidth, chartHeight, unit, t0, t1)}
      <div class="legend">${legendHtml}</div></div>`);
  }
  const height = Math.max(...panels.map((p) => (p.gridPos.y + p.gridPos.h) * ROW)) + 60;
  const when = `${new Date(t0 * 1000).toISOString().slice(0, 19)}Z to ${new Date(t1 * 1000).toISOString().slice(11, 19)}Z`;
  return `<!doctype html><html><head><meta charset="utf-8"><style>
    body{margin:0;background:#111217;color:#ccccdc;font:12px Inter,Helvetica,Arial,sans-serif;width:1400px;height:${height}px;position:relative}
    h1{font-size:16px;font-weight:500;margin:0;padding:14px 12px}
    h1 small{color:#8e8e8e;font-weight:400;margin-left:12px}
    .panel{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;padding:6px 8px;box-sizing:border-box;overflow:hidden}
    .row{position:absolute;font-size:14px;font-weight:500;padding-top:8px}
    .title{font-weight:500;margin-bottom:4px;white-space:nowrap}
    .stat{font-size:30px;color:#73bf69;font-weight:500;margin-top:4px}
    .spark{position:absolute;left:8px;right:8px;bottom:4px;opacity:.6}
    .legend{font-size:11px;line-height:15px;overflow:hidden;max-height:32px}
    .legend span{margin-right:10px;white-space:nowrap}.legend i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
    .legend b{font-weight:500;color:#fff}
    svg text{fill:#8e8e8e;font-size:10px}
    .empty{color:#8e8e8e;padding:20px}
  </style></head><body><h1>Wallet service <small>ops/grafana/dashboards/wallet-service.json, evaluated by Prometheus over a local run, ${when} (API + 2 workers; every worker stopped for 20 s mid-run)</small></h1>
  ${blocks.join('\n')}</body></html>`;
}

async function deleteQueueKeys(prefix: string) {
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  try {
    await deleteKeysWithPrefix(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

async function main() {
  const dashboard = JSON.parse(
    await readFile(path.join(ROOT, 'ops/grafana/dashboards/wallet-service.json'), 'utf8'),
  ) as {
    panels: Panel[];
  };
  const work = await mkdtemp(path.join(os.tmpdir(), 'wallet-dashboard-'));
  try {
    await dropDatabase(DATABASE_URL);
    await createDatabaseIfMissing(DATABASE_URL);
    await migrate(DATABASE_URL);

    startService('api', { PORT: String(API_PORT) });
    const startWorkers = () =>
      WORKER_PORTS.map((port) => startService('worker', { METRICS_PORT: String(port), PORT: '0' }));
    let workers = startWorkers();
    await waitFor(`${API}/readyz`);
    for (const port of WORKER_PORTS) await waitFor(`http://127.0.0.1:${port}/readyz`);

    await writeFile(
      path.join(work, 'prometheus.yml'),
      [
        `global: { scrape_interval: ${SCRAPE_SECONDS}s }`,
        'scrape_configs:',
        `  - { job_name: wallet-api, static_configs: [{ targets: ['127.0.0.1:${API_PORT}'] }] }`,
        `  - { job_name: wallet-worker, static_configs: [{ targets: [${WORKER_PORTS.map((p) => `'127.0.0.1:${p}'`).join(', ')}] }] }`,
      ].join('\n'),
    );
    start('prometheus', [
      `--config.file=${path.join(work, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(work, 'data')}`,
      `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`,
    ]);
    await waitFor(`http://127.0.0.1:${PROMETHEUS_PORT}/-/ready`);

    const walletIds: number[] = [];
    for (let i = 0; i < 200; i += 1) {
      const created = await post('/wallets', { externalId: `render-${randomUUID()}` });
      walletIds.push(Number(created.body?.id));
    }
    const t0 = Math.floor(Date.now() / 1000);
    const end = Date.now() + RUN_SECONDS * 1000;
    const began = Date.now();
    // Load rises, holds, falls; all workers stop for 20 s at 45% of the run and come back.
    const concurrency = () => {
      const f = (Date.now() - began) / (end - began);
      return Math.max(2, Math.round(24 * Math.min(1, f * 4, (1 - f) * 3)));
    };
    const outage = (async () => {
      await sleep(RUN_SECONDS * 450);
      for (const worker of workers) worker.kill('SIGTERM');
      await sleep(20_000);
      workers = startWorkers();
    })();
    await drive(walletIds, end, concurrency);
    await outage;
    await sleep(8000); // let the last batches and scrapes land
    const t1 = Math.floor(Date.now() / 1000);

    const html = await render(dashboard.panels, t0, t1);
    const htmlFile = path.join(work, 'dashboard.html');
    await writeFile(htmlFile, html);
    const height = Number(/height:(\d+)px;position/.exec(html)?.[1] ?? 1700);
    const out = path.resolve(ROOT, args.out);
    execFileSync('chromium', [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--hide-scrollbars',
      `--screenshot=${out}`,
      `--window-size=1400,${height}`,
      `file://${htmlFile}`,
    ]);
    console.log(`wrote ${path.relative(ROOT, out)} (${t1 - t0} s of data)`);
  } finally {
    stopping = true;
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await sleep(3000);
    await dropDatabase(DATABASE_URL).catch(() => undefined);
    await deleteQueueKeys(serviceEnv.QUEUE_PREFIX).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

await main();
