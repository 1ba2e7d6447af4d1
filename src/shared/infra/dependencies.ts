import pg from 'pg';
import type { Config } from './config.js';
import { connectRedis, isCluster } from './redis.js';
import { within } from './time-limit.js';

/**
 * Before a process starts its work: are Postgres and Redis there? Each is asked until it answers
 * or the wait runs out; then one message names each missing server, the URL tried (password
 * masked) and how to get it. Only at start: once running, the service rides out an outage by
 * retrying (see docs/design.md, "What happens when things fail").
 */
export type Dependency = 'Postgres' | 'Redis';

export interface UnreachableDependency {
  dependency: Dependency;
  /** The URL tried, with any password replaced by ***. */
  url: string;
  /** What went wrong, briefly: "connection refused", "no answer within 1 s", ... */
  reason: string;
  /** How to get it. */
  hint: string;
  /** The server answered but refused the login: waiting longer would not help. */
  refused: boolean;
}

export class DependenciesUnreachableError extends Error {
  constructor(
    readonly unreachable: readonly UnreachableDependency[],
    readonly waitedMs: number,
  ) {
    super(unreachable.map((failure) => describeUnreachable(failure, waitedMs)).join('\n'));
  }
}

function describeUnreachable(failure: UnreachableDependency, waitedMs: number): string {
  const where = `${failure.dependency} at ${failure.url}`;
  if (failure.refused) return `${where} refused the login (${failure.reason}). ${failure.hint}`;
  const waited = waitedMs > 0 ? `; tried for ${Math.round(waitedMs / 100) / 10} s` : '';
  return `cannot reach ${where} (${failure.reason}${waited}). ${failure.hint}`;
}

/** `postgres://user:secret@host/db` → `postgres://user:***@host/db`; text that is no URL is left out. */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    // `redis+cluster://user:secret@a:1,b:2` is no WHATWG URL (several hosts): mask by hand.
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return '(not a URL)';
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@/]*@/i, '$1***@');
  }
}

const SETTING: Record<Dependency, string> = { Postgres: 'DATABASE_URL', Redis: 'REDIS_URL' };

function hint(dependency: Dependency, problem: 'unreachable' | 'refused'): string {
  const setting = SETTING[dependency];
  if (problem === 'refused') return `Fix the user or password in ${setting}.`;
  return `Start it (with Docker: docker compose up -d postgres redis), or set ${setting} to where it runs.`;
}

/** A failure that waiting will not cure (a wrong password), as opposed to a server not (yet) there. */
class Refused extends Error {}

const ATTEMPT_TIMEOUT_MS = 1_000;
const RETRY_EVERY_MS = 250;

function reasonOf(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'host unreachable';
  if (code === 'ETIMEDOUT') return 'connection timed out';
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!.slice(0, 200) || 'no answer';
}

async function askPostgres(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: ATTEMPT_TIMEOUT_MS });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    const code = (error as { code?: string }).code;
    // The server answered: the database may simply not be created yet (`start` and `db --initdb` do that).
    if (code === '3D000') return;
    // Wrong password, unknown user, no pg_hba entry: the server is there and said no.
    if (code === '28P01' || code === '28000') throw new Refused((error as Error).message);
    throw error;
  } finally {
    void client.end().catch(() => undefined);
  }
}

type RedisSettings = Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>;
type DependencySettings = Pick<Config, 'DATABASE_URL'> & RedisSettings;

/** One server answers PING; a cluster answers PING and says `cluster_state:ok` (every slot served). */
async function askRedis(config: RedisSettings): Promise<void> {
  const redis = connectRedis(
    config,
    {
      lazyConnect: true,
      connectTimeout: ATTEMPT_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    },
    { clusterRetryStrategy: () => null },
  );
  // `connect()` rejects with "Connection is closed."; the socket's own error says why.
  let socketError: Error | undefined;
  redis.on('error', (error: Error) => (socketError ??= error));
  try {
    await redis.connect();
    await redis.ping();
    if (isCluster(redis)) {
      const info = await redis.cluster('INFO');
      if (!/^cluster_state:ok/m.test(info)) throw new Error('the cluster is not ok (cluster_state:fail)');
    }
  } catch (error) {
    if (/NOAUTH|WRONGPASS|invalid password/i.test(String((error as Error).message))) {
      throw new Refused((error as Error).message);
    }
    // ioredis Cluster reports a node it cannot reach only as "Connection is closed.".
    if (isCluster(redis) && redis.status !== 'ready')
      throw new Error('no node of the cluster answered', { cause: error });
    throw socketError ?? error;
  } finally {
    redis.disconnect();
  }
}

const ASK: Record<Dependency, (config: DependencySettings) => Promise<void>> = {
  Postgres: (config) => askPostgres(config.DATABASE_URL),
  Redis: (config) => askRedis(config),
};

/** Asks one dependency until it answers or `deadline` passes; null once it answered. */
async function reach(
  dependency: Dependency,
  config: DependencySettings,
  deadline: number,
): Promise<UnreachableDependency | null> {
  const url =
    dependency === 'Postgres'
      ? maskUrl(config.DATABASE_URL)
      : config.REDIS_CLUSTER_NODES !== undefined
        ? `cluster nodes ${config.REDIS_CLUSTER_NODES}`
        : maskUrl(config.REDIS_URL);
  for (;;) {
    try {
      await within(ASK[dependency](config), ATTEMPT_TIMEOUT_MS + 500, () => new Error('no answer within 1 s'));
      return null;
    } catch (error) {
      if (error instanceof Refused) {
        return { dependency, url, reason: error.message, hint: hint(dependency, 'refused'), refused: true };
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        return { dependency, url, reason: reasonOf(error), hint: hint(dependency, 'unreachable'), refused: false };
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_EVERY_MS, left)));
    }
  }
}

/**
 * Resolves once each of `dependencies` answers; asks each again every quarter second until
 * `waitMs` passes (0: once), then throws DependenciesUnreachableError naming every one that did not.
 */
export async function waitForDependencies(
  config: DependencySettings,
  dependencies: readonly Dependency[],
  waitMs: number,
): Promise<void> {
  const started = Date.now();
  const results = await Promise.all(dependencies.map((dependency) => reach(dependency, config, started + waitMs)));
  const unreachable = results.filter((result): result is UnreachableDependency => result !== null);
  if (unreachable.length > 0) throw new DependenciesUnreachableError(unreachable, waitMs);
}
