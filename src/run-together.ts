/**
 * `wallet start`: the API and a worker as separate processes, so a single machine uses a core
 * for each, started and stopped together. Ctrl-C or SIGTERM stops both gracefully; if either
 * ends on its own, the other is stopped too and the exit code says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from './shared/infra/logger.js';

/** Set for the children: they stop by themselves if this process goes away (see commands.ts). */
export const SUPERVISED_ENV = 'WALLET_SUPERVISED';

/** What a child tells `start` over IPC once it is up: its role and the port it serves. */
export interface ReadyMessage {
  type: 'ready';
  role: string;
  port: number;
}

/** In a child of `start`: says it is up. Elsewhere: nothing. */
export function tellSupervisorReady(role: string, port: number): void {
  if (!process.env[SUPERVISED_ENV] || !process.send) return;
  const message: ReadyMessage = { type: 'ready', role, port };
  process.send(message);
}

function isReadyMessage(message: unknown): message is ReadyMessage {
  return typeof message === 'object' && message !== null && (message as ReadyMessage).type === 'ready';
}

/**
 * Runs `roles` as child processes until they end; resolves with the exit code for `start`.
 * `onReady` is called once, with each role's port, when every child has said it is up.
 */
export function runTogether(
  roles: readonly string[],
  logger: Logger,
  shutdownTimeoutMs: number,
  onReady: (ports: Record<string, number>) => void = () => undefined,
): Promise<number> {
  const ports: Record<string, number> = {};
  return new Promise((resolve) => {
    let stopping = false;
    let exitCode = 0;
    let running = roles.length;
    const children: ChildProcess[] = roles.map((role) => {
      // Same Node, same flags (--import ./dist/instrumentation.js), same entry point, another role.
      const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, role], {
        env: { ...process.env, [SUPERVISED_ENV]: '1' },
        // Own process group: a terminal's Ctrl-C reaches only us, and each child gets one SIGTERM.
        detached: true,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      child.on('message', (message) => {
        if (!isReadyMessage(message) || message.role in ports) return;
        ports[message.role] = message.port;
        if (!stopping && roles.every((name) => name in ports)) onReady({ ...ports });
      });
      child.once('exit', (code, signal) => {
        running -= 1;
        if (code !== 0) exitCode = 1;
        if (!stopping) {
          logger.error({ role, code, signal }, 'a process of `start` ended; stopping the others');
          exitCode = 1;
          stopAll();
        }
        if (running === 0) resolve(exitCode);
      });
      return child;
    });

    // Each child gets one SIGTERM: a second one would make it skip its graceful shutdown.
    const signalled = new Set<ChildProcess>();
    function stopAll(): void {
      stopping = true;
      for (const child of children) {
        if (child.exitCode !== null || child.signalCode !== null || signalled.has(child)) continue;
        signalled.add(child);
        child.kill('SIGTERM');
      }
      if (signalled.size === 0) return;
      setTimeout(() => {
        for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, shutdownTimeoutMs + 5_000).unref();
    }

    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        if (!stopping) logger.info({ signal }, 'stopping the API and the worker');
        stopAll();
      });
    }
  });
}
