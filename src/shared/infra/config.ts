/** infra: config, Postgres/Redis connections, the apply queue, logging, migrations, health probes, shutdown. */
import { z } from 'zod';

/**
 * An empty (or blank) variable means unset: `RATE_LIMIT_PER_SECOND=` in an env file must give the
 * default, not `Number('') === 0` (which would turn rate limiting off). Text that is not a number
 * still stops the process.
 */
const unsetIfBlank = (value: unknown) => (typeof value === 'string' && value.trim() === '' ? undefined : value);
const integer = (fallback: number, min = 0) =>
  z.preprocess(unsetIfBlank, z.coerce.number().int().min(min).default(fallback));
const positive = (fallback: number) => z.preprocess(unsetIfBlank, z.coerce.number().positive().default(fallback));
const BYTE_UNITS = { b: 1, kb: 1024, mb: 1024 * 1024 } as const;
/** `16kb`, `1mb` or a plain number of bytes (units of 1024, as express reads them) to a number of bytes. */
const byteSize = (fallback: string) =>
  z.preprocess(
    unsetIfBlank,
    z
      .string()
      .default(fallback)
      .transform((text, context) => {
        const match = /^(\d{1,10})\s*(b|kb|mb)?$/i.exec(text.trim());
        if (!match) {
          context.addIssue({ code: 'custom', message: 'must be a size such as 16kb, 1mb or 16384' });
          return z.NEVER;
        }
        const unit = (match[2]?.toLowerCase() ?? 'b') as keyof typeof BYTE_UNITS;
        return Number(match[1]) * BYTE_UNITS[unit];
      }),
  );

/**
 * Every setting the service reads, parsed once from the environment.
 * Defaults work on a developer machine with Postgres and Redis on their standard local ports.
 */
export const configSchema = z
  .object({
    DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/wallet'),
    /**
     * A streaming replica of DATABASE_URL's database (optional): the API's listings and searches
     * read there, so they may lag the primary (README, "Reads off a replica"); everything a client
     * must see right after its own write, and every write, stays on DATABASE_URL.
     */
    DATABASE_READ_URL: z.preprocess(unsetIfBlank, z.string().url().optional()),
    /**
     * One Redis (`redis://`, `rediss://`) or a Redis Cluster (`redis+cluster://[user:pass@]host:port,host:port,...`,
     * any of its nodes: the rest are discovered). See redisTarget.
     */
    REDIS_URL: z
      .string()
      .default('redis://127.0.0.1:6379')
      .refine((url) => parseRedisUrl(url) !== null, {
        message: 'must be redis://host:port, rediss://host:port or redis+cluster://host:port,host:port,...',
      }),
    /** `host:port,host:port,...`: some nodes of a Redis Cluster; set, it is used instead of REDIS_URL. */
    REDIS_CLUSTER_NODES: z.preprocess(
      unsetIfBlank,
      z
        .string()
        .refine((nodes) => parseNodeList(nodes) !== null, { message: 'must be host:port,host:port,...' })
        .optional(),
    ),
    /**
     * Apply queue shards: wallet W's jobs go to shard W mod QUEUE_SHARDS, each a BullMQ queue under a
     * hash tag of its own, so on Redis Cluster the shards spread over the nodes. 1 (the default) is
     * the single queue `wallet-apply` of earlier versions. Change it only as docs/scaling.md says.
     */
    QUEUE_SHARDS: integer(1, 1).pipe(z.number().max(1024)),
    /** The shards this worker takes jobs from, e.g. `0,2` (default: all of them). */
    QUEUE_SHARDS_SERVED: z.preprocess(
      unsetIfBlank,
      z
        .string()
        .regex(/^\s*\d+(\s*,\s*\d+)*\s*$/, 'must be a list of shard numbers such as 0,2')
        .transform((list) => [...new Set(list.split(',').map((item) => Number(item.trim())))].sort((a, b) => a - b))
        .optional(),
    ),
    PORT: integer(3000),
    HOST: z.string().default('0.0.0.0'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Prefix of every BullMQ key; lets several deployments (or test files) share one Redis. */
    QUEUE_PREFIX: z.string().min(1).default('wallet'),
    DB_POOL_SIZE: integer(20, 1),
    /** Jobs (wallets) one worker process applies at the same time. */
    WORKER_CONCURRENCY: integer(64, 1),
    /** Most pending transactions applied in one database transaction. */
    APPLY_BATCH_SIZE: integer(500, 1),
    /** How long a worker holds a job before BullMQ considers it stalled (e.g. its process died). */
    WORKER_LOCK_DURATION_MS: integer(10_000, 1000),
    WORKER_STALLED_INTERVAL_MS: integer(5_000, 500),
    SWEEP_INTERVAL_MS: integer(5_000, 100),
    /** A pending transaction older than this is re-enqueued by the sweeper. */
    SWEEP_STALE_AFTER_MS: integer(10_000, 0),
    /** Expiry of a hold that names none (`expiresInSeconds`), in seconds: 7 days. */
    HOLD_DEFAULT_EXPIRY_SECONDS: integer(7 * 24 * 3600, 1),
    /** The longest expiry a hold may ask for, in seconds: 30 days. */
    HOLD_MAX_EXPIRY_SECONDS: integer(30 * 24 * 3600, 1),
    /** Longest `Prefer: wait=N` the API honours, in seconds. */
    MAX_PREFER_WAIT_S: integer(30, 0),
    /** Largest request body, in bytes (given as `16kb`, `1mb` or a number). */
    BODY_LIMIT: byteSize('16kb'),
    /** How often each worker's outbox relay looks for unpublished events. */
    RELAY_INTERVAL_MS: integer(200, 10),
    /** Longest the relay waits for Redis to take a batch before it abandons the pass (no transaction is open meanwhile). */
    RELAY_PUBLISH_TIMEOUT_MS: integer(5_000, 100),
    /** The Redis Stream keeps this many newest events, and more while a consumer group has not read them. */
    EVENT_STREAM_MAX_LENGTH: integer(100_000, 1000),
    WEBHOOK_TIMEOUT_MS: integer(5_000, 100),
    /** Subscriptions one worker process delivers to at the same time. */
    WEBHOOK_CONCURRENCY: integer(8, 1),
    /** How long published events (and their finished webhook deliveries) are kept. */
    OUTBOX_RETENTION_HOURS: positive(168),
    /**
     * Only the exact text `true` lets webhooks target loopback, private, link-local and other
     * internal addresses (local development: a receiver on 127.0.0.1). Off, such URLs are refused
     * at registration and such addresses at connect time.
     */
    WEBHOOK_ALLOW_PRIVATE_TARGETS: z
      .preprocess(unsetIfBlank, z.enum(['true', 'false']).default('false'))
      .transform((value) => value === 'true'),
    /** How often subscriptions whose retries ran out get another round (and old events are cleaned up). */
    WEBHOOK_SWEEP_INTERVAL_MS: integer(60_000, 100),
    /**
     * The currency (ISO 4217 code) of a wallet created without one, and of every wallet that existed
     * before currencies (migration 006). Checked against Intl's list at start.
     */
    DEFAULT_CURRENCY: z.preprocess(
      unsetIfBlank,
      z
        .string()
        .default('EUR')
        // infra imports no ledger code: the same list that src/shared/ledger/currency.ts reads.
        .refine(
          (code) => /^[A-Z]{3}$/.test(code) && Intl.supportedValuesOf('currency').includes(code),
          'must be an ISO 4217 code that Intl knows, such as EUR',
        ),
    ),
    /** How old (since it was posted) a transaction may be and still be voided. */
    VOID_WINDOW_HOURS: positive(24),
    SHUTDOWN_TIMEOUT_MS: integer(25_000, 0),
    /**
     * How long a process waits at start for Postgres and Redis to answer before it exits naming the
     * missing one (0: ask once). Once running, an outage is ridden out by retrying instead.
     */
    STARTUP_TIMEOUT_MS: integer(10_000, 0),
    /** Port of a worker's own HTTP server for /metrics, /healthz and /readyz (0: any free port). */
    METRICS_PORT: integer(9464),
    /**
     * Only the exact text `true` turns API key checks off (local development); the process then
     * warns at every start. Anything else, or nothing, keeps them on.
     */
    AUTH_DISABLED: z
      .preprocess(unsetIfBlank, z.enum(['true', 'false']).default('false'))
      .transform((value) => value === 'true'),
    /**
     * On a first start in a terminal, with no API key in the database, `start` (or `api`) creates
     * one admin key and shows it once in its banner. Only the exact text `false` turns that off.
     */
    BOOTSTRAP_API_KEY: z
      .preprocess(unsetIfBlank, z.enum(['true', 'false']).default('true'))
      .transform((value) => value === 'true'),
    /** How long an API process trusts a key it verified; also the longest a revoked key keeps working. */
    API_KEY_CACHE_TTL_MS: integer(5_000, 0),
    /** Per API key: sustained requests per second (0 turns rate limiting off) and the burst above it. */
    RATE_LIMIT_PER_SECOND: integer(100, 0),
    RATE_LIMIT_BURST: integer(200, 1),
    /**
     * Per client address, for requests without a key the API process has verified recently (no key,
     * a bad key, or one that needs a database lookup): requests per second (0 turns it off) and burst.
     */
    RATE_LIMIT_UNAUTHENTICATED_PER_SECOND: integer(10, 0),
    RATE_LIMIT_UNAUTHENTICATED_BURST: integer(50, 1),
  })
  .superRefine((config, context) => {
    const outOfRange = (config.QUEUE_SHARDS_SERVED ?? []).filter((shard) => shard >= config.QUEUE_SHARDS);
    if (outOfRange.length > 0) {
      context.addIssue({
        code: 'custom',
        path: ['QUEUE_SHARDS_SERVED'],
        message: `shards ${outOfRange.join(', ')} do not exist: QUEUE_SHARDS is ${config.QUEUE_SHARDS} (shards 0..${config.QUEUE_SHARDS - 1})`,
      });
    }
    const onCluster = config.REDIS_CLUSTER_NODES !== undefined || parseRedisUrl(config.REDIS_URL)?.kind === 'cluster';
    if (onCluster && /[{}]/.test(config.QUEUE_PREFIX)) {
      context.addIssue({
        code: 'custom',
        path: ['QUEUE_PREFIX'],
        message: 'must not contain { or } on Redis Cluster (the service places its own hash tags)',
      });
    }
  });

export type Config = z.infer<typeof configSchema>;

export interface RedisNode {
  host: string;
  port: number;
}

/** Where Redis is: one server (ioredis takes the URL as it is), or some nodes of a cluster. */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: RedisNode[]; username?: string; password?: string; tls: boolean };

/** `host:port,host:port` (IPv6 in brackets: `[::1]:7000`) to nodes; null when malformed. */
function parseNodeList(list: string): RedisNode[] | null {
  const nodes: RedisNode[] = [];
  for (const item of list.split(',')) {
    const match = /^\s*(\[[^\]]+\]|[^:\s]+):(\d{1,5})\s*$/.exec(item);
    if (!match) return null;
    const port = Number(match[2]);
    if (port < 1 || port > 65_535) return null;
    nodes.push({ host: match[1]!.replace(/^\[|\]$/g, ''), port });
  }
  return nodes.length > 0 ? nodes : null;
}

/** REDIS_URL to a target; null when it is neither a redis(s):// URL nor a redis(s)+cluster:// list. */
function parseRedisUrl(url: string): RedisTarget | null {
  const cluster = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#]+)\/?$/i.exec(url.trim());
  if (cluster) {
    const nodes = parseNodeList(cluster[3]!);
    if (!nodes) return null;
    const [user, password] = (cluster[2] ?? '').split(':', 2).map((part) => decodeURIComponent(part));
    return {
      kind: 'cluster',
      nodes,
      tls: cluster[1]!.toLowerCase() === 'rediss',
      ...(user ? { username: user } : {}),
      ...(password ? { password } : {}),
    };
  }
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'redis:' || parsed.protocol === 'rediss:' ? { kind: 'single', url } : null;
  } catch {
    return null;
  }
}

/** REDIS_CLUSTER_NODES when set (with REDIS_URL's user and password, if any), else REDIS_URL. */
export function redisTarget(config: Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>): RedisTarget {
  const fromUrl = parseRedisUrl(config.REDIS_URL);
  if (!fromUrl) throw new ConfigError(`REDIS_URL is not a Redis URL: ${config.REDIS_URL}`);
  if (config.REDIS_CLUSTER_NODES === undefined) return fromUrl;
  const nodes = parseNodeList(config.REDIS_CLUSTER_NODES);
  if (!nodes) throw new ConfigError('REDIS_CLUSTER_NODES must be host:port,host:port,...');
  const credentials =
    fromUrl.kind === 'cluster'
      ? { username: fromUrl.username, password: fromUrl.password, tls: fromUrl.tls }
      : credentialsOf(fromUrl.url);
  return {
    kind: 'cluster',
    nodes,
    tls: credentials.tls,
    ...(credentials.username ? { username: credentials.username } : {}),
    ...(credentials.password ? { password: credentials.password } : {}),
  };
}

function credentialsOf(url: string): { username?: string; password?: string; tls: boolean } {
  const parsed = new URL(url);
  return {
    tls: parsed.protocol === 'rediss:',
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
  };
}

/** The shards a worker takes jobs from: QUEUE_SHARDS_SERVED, or every shard. */
export function servedShards(config: Pick<Config, 'QUEUE_SHARDS' | 'QUEUE_SHARDS_SERVED'>): number[] {
  return config.QUEUE_SHARDS_SERVED ?? Array.from({ length: config.QUEUE_SHARDS }, (_, shard) => shard);
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // The original service read DB_DATABASE and LOGLEVEL; keep honouring them.
  const withLegacyNames = {
    ...env,
    DATABASE_URL: env.DATABASE_URL ?? env.DB_DATABASE,
    LOG_LEVEL: env.LOG_LEVEL ?? env.LOGLEVEL,
  };
  const parsed = configSchema.safeParse(withLegacyNames);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  return parsed.data;
}
