import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpClient } from './http.js';

export type Runtime = 'node' | 'tsx';

export interface ServiceEnv {
  DATABASE_URL: string;
  REDIS_URL: string;
  QUEUE_PREFIX: string;
  PORT: number;
}

/** A service process the bench started; stop() is safe to call more than once. */
export class ServiceProcess {
  readonly exited: Promise<void>;
  private stopping = false;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = once(child, 'exit').then(() => undefined);
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => process.stderr.write(`[${name}] ${line}\n`));
    }
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} has no pid`);
    return this.child.pid;
  }

  /** True when the process ended without the bench asking it to. */
  get crashed(): boolean {
    return !this.stopping && (this.child.exitCode !== null || this.child.signalCode !== null);
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = sleep(graceMs, 'timeout' as const);
    if ((await Promise.race([this.exited.then(() => 'exited' as const), timer])) === 'timeout') {
      process.stderr.write(`[bench] ${this.name} ignored SIGTERM for ${graceMs} ms; sending SIGKILL\n`);
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** Every process started here, so that cleanup can reach them even after an error. */
const started = new Set<ServiceProcess>();

export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((service) => service.stop()));
  started.clear();
}

export function build(): void {
  const result = spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`npm run build failed (status ${String(result.status)})`);
}

/** api, worker, start (both as child processes, like `npm start`) or the synchronous reference (bench/sync-reference.ts). */
export type Role = 'api' | 'worker' | 'start' | 'reference';

export function startService(name: string, role: Role, runtime: Runtime, env: ServiceEnv): ServiceProcess {
  const args =
    role === 'reference'
      ? ['--import', 'tsx', 'bench/sync-reference.ts']
      : runtime === 'node'
        ? ['dist/cli.js', role]
        : ['--import', 'tsx', 'src/cli.ts', role];
  const child = spawn(process.execPath, args, {
    // Its own process group: a Ctrl-C in the terminal reaches the bench only, which stops it with SIGTERM.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      DATABASE_URL: env.DATABASE_URL,
      REDIS_URL: env.REDIS_URL,
      QUEUE_PREFIX: env.QUEUE_PREFIX,
      PORT: String(env.PORT),
      HOST: '127.0.0.1',
      // The bench posts ~1,000/s and more with one key: keep the limiter on (its cost is measured) but far above that.
      RATE_LIMIT_PER_SECOND: process.env.RATE_LIMIT_PER_SECOND ?? '1000000',
      RATE_LIMIT_BURST: process.env.RATE_LIMIT_BURST ?? '1000000',
    },
  });
  const service = new ServiceProcess(name, child);
  started.add(service);
  void service.exited.then(() => started.delete(service));
  return service;
}

/** Waits until the API answers HTTP at all (a 404 for a wallet that does not exist will do). */
export async function waitForApi(api: ServiceProcess, client: HttpClient, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (api.crashed) throw new Error(`${api.name} exited before it answered`);
    try {
      await client.request('GET', '/wallets/1/balance');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${api.name} did not answer within ${timeoutMs} ms`, { cause: error });
      await sleep(100);
    }
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('could not find a free port');
  return address.port;
}

/** The processes `pid` started (Linux /proc), with their command lines: `wallet start`'s API and worker. */
export function childProcesses(pid: number): { pid: number; command: string }[] {
  const children: { pid: number; command: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the parenthesised command: state, ppid, ...
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      children.push({ pid: Number(entry), command });
    } catch {
      // the process ended meanwhile
    }
  }
  return children;
}
