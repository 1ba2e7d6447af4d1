import { spawn } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TcpProxy } from '../support/tcp-proxy.js';
import {
  ROOT,
  createTestEnv,
  spawnService,
  stopProcess,
  waitForExit,
  waitUntil,
  type TestEnv,
} from '../support/test-env.js';

/**
 * A process started while Postgres or Redis is missing: Postgres and Redis here are reached on
 * ports where nothing listens (or through a proxy started late); the machine's servers are never touched.
 */
let env: TestEnv;
const proxies: TcpProxy[] = [];

beforeAll(async () => {
  env = await createTestEnv('startup');
});

afterAll(async () => {
  for (const proxy of proxies) await proxy.stop();
  await env?.destroy();
});

/** A port on which nothing listens (it did a moment ago, so nothing else took it). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `wallet <role>` as a user starts it; resolves when it exits. */
async function runUntilExit(role: string, extraEnv: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), role], {
    cwd: ROOT,
    env: { ...env.env, LOG_LEVEL: 'info', PORT: '0', METRICS_PORT: '0', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const started = Date.now();
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const { code } = await waitForExit(child);
  clearTimeout(killer);
  return { code, stdout, stderr, ms: Date.now() - started };
}

describe('starting while a server is missing', () => {
  it('When Postgres is unreachable, then start exits 1 after the bounded wait with one line naming Postgres, the masked URL and how to get it', async () => {
    const url = `postgres://postgres:s3cret-pw@127.0.0.1:${await closedPort()}/wallet`;
    const result = await runUntilExit('start', { DATABASE_URL: url, STARTUP_TIMEOUT_MS: '4000' });
    expect(result.code).toBe(1);
    expect(result.ms).toBeGreaterThanOrEqual(4000); // it waited, rather than giving up at the first refusal
    expect(result.ms).toBeLessThan(20_000);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toContain(`cannot reach Postgres at ${url.replace('s3cret-pw', '***')} (connection refused`);
    expect(lines[0]).toContain('docker compose up -d postgres redis');
    expect(lines[0]).toContain('DATABASE_URL');
    expect(result.stdout + result.stderr).not.toContain('s3cret-pw');
    expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(result.stderr).not.toContain('Redis');
  });

  it('When Redis is unreachable, then start exits 1 instead of retrying forever, naming Redis and REDIS_URL', async () => {
    const url = `redis://:s3cret-pw@127.0.0.1:${await closedPort()}`;
    const result = await runUntilExit('start', { REDIS_URL: url, STARTUP_TIMEOUT_MS: '1500' });
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toContain(`cannot reach Redis at redis://:***@127.0.0.1:`);
    expect(lines[0]).toContain('REDIS_URL');
    expect(result.stdout + result.stderr).not.toContain('s3cret-pw');
    // Machines still get a JSON line, without a stack.
    const fatal = result.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line))
      .find((line) => line.level === 60);
    expect(fatal).toMatchObject({ unreachable: [{ dependency: 'Redis' }] });
    expect(fatal.err).toBeUndefined();
  });

  it('When both are unreachable, then the worker names both, one line each', async () => {
    const result = await runUntilExit('worker', {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${await closedPort()}/wallet`,
      REDIS_URL: `redis://127.0.0.1:${await closedPort()}`,
      STARTUP_TIMEOUT_MS: '500',
    });
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^wallet: cannot reach Postgres /);
    expect(lines[1]).toMatch(/^wallet: cannot reach Redis /);
  });

  it('When Redis comes up during the wait, then the worker, which kept asking, starts normally', async () => {
    // Until Redis "comes up", the port hangs up on every connection, and counts them.
    let attempts = 0;
    const hangUp = net.createServer((socket) => {
      attempts += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
    const { port } = hangUp.address() as AddressInfo;
    const worker = spawnService(env, 'worker', {
      REDIS_URL: `redis://127.0.0.1:${port}`,
      STARTUP_TIMEOUT_MS: '20000',
      METRICS_PORT: '0',
    });
    try {
      await waitUntil('the worker asked Redis three times', () => Promise.resolve(attempts >= 3), 15_000);
      expect(worker.exitCode).toBeNull();
      await new Promise((resolve) => hangUp.close(resolve));
      proxies.push(await new TcpProxy('127.0.0.1', 6379).start(port));
      await worker.ready;
    } finally {
      hangUp.close();
      await stopProcess(worker);
    }
  });
});
