/**
 * What a window cost Redis, from the server's own counters: CPU seconds (`INFO cpu`, the whole
 * server process, so also its background threads) and commands by name (`INFO commandstats`).
 * The counters are the server's, not one client's: run the bench on a Redis of its own
 * (`--redis-url`) for figures that hold only the bench's traffic.
 */
import { isCluster, type RedisClient } from '../src/shared/infra/redis.js';

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

/** The counters of one server, or summed over a cluster's masters. */
export async function redisCounters(redis: RedisClient): Promise<RedisCounters> {
  const servers = isCluster(redis) ? redis.nodes('master') : [redis];
  const total: RedisCounters = { cpuSeconds: 0, calls: new Map(), connectedClients: 0 };
  for (const server of servers) {
    const [cpu, commandstats, clients] = await Promise.all([
      server.info('cpu'),
      server.info('commandstats'),
      server.info('clients'),
    ]);
    for (const match of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      total.calls.set(match[1]!, (total.calls.get(match[1]!) ?? 0) + Number(match[2]));
    }
    total.cpuSeconds += field(cpu, 'used_cpu_sys') + field(cpu, 'used_cpu_user');
    total.connectedClients += field(clients, 'connected_clients');
  }
  return total;
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
