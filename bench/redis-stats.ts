/**
 * What a window cost Redis, from the server's own counters: CPU seconds (`INFO cpu`, the whole
 * server process, so also its background threads) and commands by name (`INFO commandstats`).
 * The counters are the server's, not one client's: run the bench on a Redis of its own
 * (`--redis-url`) for figures that hold only the bench's traffic.
 */
import { Redis } from 'ioredis';

export interface RedisCounters {
  cpuSeconds: number;
  calls: Map<string, number>;
  connectedClients: number;
}

export interface RedisUsage {
  cpuSeconds: number;
  commands: number;
  /** Commands by name, most called first. */
  byCommand: { command: string; calls: number }[];
  /** Clients connected at the end of the window, the bench's own included. */
  connectedClients: number;
}

function field(info: string, name: string): number {
  const match = new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info);
  return match ? Number(match[1]) : 0;
}

export async function redisCounters(redis: Redis): Promise<RedisCounters> {
  const [cpu, commandstats, clients] = await Promise.all([
    redis.info('cpu'),
    redis.info('commandstats'),
    redis.info('clients'),
  ]);
  const calls = new Map<string, number>();
  for (const match of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1]!, Number(match[2]));
  return {
    cpuSeconds: field(cpu, 'used_cpu_sys') + field(cpu, 'used_cpu_user'),
    calls,
    connectedClients: field(clients, 'connected_clients'),
  };
}

export function redisUsage(start: RedisCounters, end: RedisCounters): RedisUsage {
  const byCommand = [...end.calls]
    .map(([command, calls]) => ({ command, calls: calls - (start.calls.get(command) ?? 0) }))
    .filter((entry) => entry.calls > 0)
    .sort((a, b) => b.calls - a.calls);
  return {
    cpuSeconds: end.cpuSeconds - start.cpuSeconds,
    commands: byCommand.reduce((total, entry) => total + entry.calls, 0),
    byCommand,
    connectedClients: end.connectedClients,
  };
}
