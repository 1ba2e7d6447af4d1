import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createFirstApiKey } from '../../src/shared/auth/api-key-repository.js';
import { request } from '../support/http.js';
import { ROOT, createTestEnv, stopProcess, waitForExit, waitUntil, type TestEnv } from '../support/test-env.js';

/**
 * `start` and `api` as a newcomer runs them: in a real terminal (a pseudo-terminal from util-linux's
 * `script`), and with stdout piped as in a container.
 */
let env: TestEnv;
const children: ChildProcess[] = [];

beforeAll(async () => {
  env = await createTestEnv('first_start');
});

afterAll(async () => {
  for (const child of children) await stopProcess(child);
  await env?.destroy();
});

const keyRows = () =>
  env.pool.any(
    sql.type(z.object({ name: z.string(), scopes: z.array(z.string()) }))`SELECT name, scopes FROM api_keys`,
  );
const emptyKeyTable = () => env.pool.query(sql.unsafe`DELETE FROM api_keys`);

const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

interface Run {
  child: ChildProcess;
  output: () => string;
}

/**
 * `wallet <role>` with a pseudo-terminal as stdin, stdout and stderr (`script -e` passes its exit code on).
 * `exec`: script runs the command through $SHELL, and dash (/bin/sh, what CI has) stays as the
 * parent, so Ctrl-C would kill the shell (exit 130) instead of reaching only the service.
 */
function inTerminal(role: string, extraEnv: Record<string, string> = {}): Run {
  const command = `exec ${[process.execPath, '--import', 'tsx', path.join(ROOT, 'src/cli.ts'), role].map(quote).join(' ')}`;
  return track(spawn('script', ['-qfec', command, '/dev/null'], { cwd: ROOT, env: serviceEnv(extraEnv) }));
}

/** The same with stdout and stderr piped: no terminal. */
function piped(role: string, extraEnv: Record<string, string> = {}): Run {
  const args = ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), role];
  return track(spawn(process.execPath, args, { cwd: ROOT, env: serviceEnv(extraEnv) }));
}

function serviceEnv(extraEnv: Record<string, string>): NodeJS.ProcessEnv {
  return { ...env.env, LOG_LEVEL: 'info', PORT: '0', METRICS_PORT: '0', ...extraEnv };
}

function track(child: ChildProcess): Run {
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString().replaceAll('\r', '')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString().replaceAll('\r', '')));
  return { child, output: () => output };
}

const bannerShown = (run: Run) =>
  waitUntil('the banner is shown', () => Promise.resolve(/Stop with Ctrl-C/.test(run.output())), 45_000);
const banner = (run: Run) => run.output().slice(run.output().lastIndexOf('\n\n  Wallet'));

describe('a first start in a terminal', () => {
  it('When start runs in a terminal on a database without API keys, then once ready it shows where everything is and one admin key, once, that works; Ctrl-C stops it', async () => {
    await emptyKeyTable();
    const run = inTerminal('start');
    await bannerShown(run);
    const text = banner(run);
    const apiUrl = /API +(http:\/\/127\.0\.0\.1:\d+)\n/.exec(text)?.[1]; // HOST is 127.0.0.1 here
    expect(apiUrl, text).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
    expect(text).toContain(`Reference    ${apiUrl}/docs`);
    expect(text).toContain(`Metrics      ${apiUrl}/metrics`);
    expect(text).toMatch(/Worker ops +http:\/\/127\.0\.0\.1:[1-9]\d*\/metrics/);
    expect(text).toContain('Stop with Ctrl-C');

    const key = /export KEY=(wk_[A-Za-z0-9_-]{43})\n/.exec(text)?.[1];
    expect(key, text).toBeDefined();
    expect(run.output().split(key!).length - 1).toBe(1); // shown once: in the banner, in no log line
    expect(await keyRows()).toEqual([{ name: 'first start', scopes: ['admin'] }]);
    const local = apiUrl!;
    expect(
      (await request(local, 'POST', '/wallets', { json: { externalId: 'first-start' }, apiKey: key })).status,
    ).toBe(201);
    expect((await request(local, 'GET', '/wallets', { apiKey: key })).status).toBe(200);

    run.child.stdin!.write('\x03'); // Ctrl-C, through the terminal
    expect(await waitForExit(run.child)).toEqual({ code: 0, signal: null });
  }, 90_000);

  it('When start runs in a terminal and a key exists, then the banner shows none and none is made', async () => {
    const before = await keyRows();
    expect(before).toHaveLength(1);
    const run = inTerminal('start');
    await bannerShown(run);
    expect(banner(run)).toContain('Every call needs an API key');
    expect(run.output()).not.toMatch(/wk_[A-Za-z0-9_-]{43}/);
    expect(await keyRows()).toEqual(before);
    run.child.stdin!.write('\x03');
    expect((await waitForExit(run.child)).code).toBe(0);
  }, 90_000);

  it('When BOOTSTRAP_API_KEY=false, then even in a terminal no key is made, and the banner says how to create one', async () => {
    await emptyKeyTable();
    const run = inTerminal('start', { BOOTSTRAP_API_KEY: 'false' });
    await bannerShown(run);
    expect(banner(run)).toContain('No API key exists, so every call answers 401 until you create one:');
    expect(banner(run)).toContain('npm run apikey -- create --name me --scopes admin');
    expect(run.output()).not.toMatch(/wk_[A-Za-z0-9_-]{43}/);
    expect(await keyRows()).toEqual([]);
    run.child.stdin!.write('\x03');
    expect((await waitForExit(run.child)).code).toBe(0);
  }, 90_000);

  it('When api runs alone in a terminal on a database without keys, then its banner shows a key and says that no worker runs', async () => {
    await emptyKeyTable();
    const run = inTerminal('api');
    await bannerShown(run);
    expect(banner(run)).toContain('no worker in this process');
    expect(banner(run)).toMatch(/export KEY=wk_/);
    expect(await keyRows()).toHaveLength(1);
    run.child.stdin!.write('\x03');
    expect((await waitForExit(run.child)).code).toBe(0);
  }, 90_000);
});

describe('the first key', () => {
  it('When several processes start at once on an empty key table, then exactly one first key is made', async () => {
    await emptyKeyTable();
    // Eight open connections first, so that the eight attempts really run side by side.
    await Promise.all(Array.from({ length: 8 }, () => env.pool.query(sql.unsafe`SELECT pg_sleep(0.05)`)));
    const made = await Promise.all(
      Array.from({ length: 8 }, () => createFirstApiKey(env.pool, { name: 'first start', scopes: ['admin'] })),
    );
    expect(made.filter((created) => created !== null)).toHaveLength(1);
    expect(await keyRows()).toHaveLength(1);
  });
});

describe('a first start without a terminal', () => {
  it('When start runs with stdout piped on a database without keys, then it makes no key, prints no banner, and a warn line says how to create one', async () => {
    await emptyKeyTable();
    const run = piped('start');
    await waitUntil(
      'both are up',
      () =>
        Promise.resolve(['api listening', 'worker started'].every((msg) => run.output().includes(`"msg":"${msg}"`))),
      45_000,
    );
    const lines = run
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; msg: string });
    const warning = lines.find((line) => line.msg.startsWith('no API key exists'));
    expect(warning, run.output()).toMatchObject({ level: 40 });
    expect(warning!.msg).toContain('npm run apikey -- create --name me --scopes admin');
    expect(run.output()).not.toContain('Stop with Ctrl-C');
    expect(run.output()).not.toMatch(/wk_[A-Za-z0-9_-]{43}/);
    expect(await keyRows()).toEqual([]);
    run.child.kill('SIGINT');
    expect((await waitForExit(run.child)).code).toBe(0);
  }, 90_000);
});
