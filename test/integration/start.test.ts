import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../support/http.js';
import { ROOT, createTestEnv, waitForExit, waitUntil, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
const started: ChildProcess[] = [];

beforeAll(async () => {
  env = await createTestEnv('start');
});

afterAll(async () => {
  for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
  await env?.destroy();
});

interface LogLine {
  msg?: string;
  pid?: number;
  port?: number;
}

/** `wallet start` as a user runs it; its children write their log lines to the same stdout. */
function startTogether() {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'start'], {
    cwd: ROOT,
    env: { ...env.env, LOG_LEVEL: 'info', PORT: '0', METRICS_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  const lines: LogLine[] = [];
  let partial = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString();
    const complete = text.split('\n');
    partial = complete.pop() ?? '';
    for (const line of complete) if (line.startsWith('{')) lines.push(JSON.parse(line) as LogLine);
  });
  return { child, lines };
}

describe('npm start: the API and a worker as two processes', () => {
  it('When started, then the API and the worker run in processes of their own, apply transactions, and Ctrl-C stops all three with 0', async () => {
    const { child, lines } = startTogether();
    await waitUntil('both are up', () =>
      Promise.resolve(['api listening', 'worker started'].every((msg) => lines.some((line) => line.msg === msg))),
    );
    const api = lines.find((line) => line.msg === 'api listening')!;
    const worker = lines.find((line) => line.msg === 'worker started')!;
    expect(new Set([api.pid, worker.pid, child.pid]).size).toBe(3);

    const url = `http://127.0.0.1:${api.port}`;
    const wallet = await request(url, 'POST', '/wallets', { json: { externalId: 'start-1' } });
    const posted = await request(url, 'POST', `/wallets/${wallet.body.id}/transactions`, {
      json: { amount: 5, fingerprint: 'start-1' },
      headers: { prefer: 'wait=10' },
    });
    expect(posted.status).toBe(201);

    child.kill('SIGINT');
    expect(await waitForExit(child)).toEqual({ code: 0, signal: null });
    expect(lines.filter((line) => line.msg === 'api stopped' || line.msg === 'worker stopped')).toHaveLength(2);
  }, 60_000);

  it('When the worker dies, then the API is stopped too and start exits 1', async () => {
    const { child, lines } = startTogether();
    await waitUntil('both are up', () =>
      Promise.resolve(['api listening', 'worker started'].every((msg) => lines.some((line) => line.msg === msg))),
    );
    const worker = lines.find((line) => line.msg === 'worker started')!;
    process.kill(worker.pid!, 'SIGKILL');
    expect(await waitForExit(child)).toEqual({ code: 1, signal: null });
    expect(lines.some((line) => line.msg === 'api stopped')).toBe(true);
  }, 60_000);
});
