import pg from 'pg';
import type { Logger } from './logger.js';
import { pendingMigrations } from './migrate.js';
import type { RedisClient } from './redis.js';
import { within } from './time-limit.js';

/**
 * Liveness and readiness, shared by the API and the workers.
 * Readiness asks each dependency directly, with a short timeout, on every probe: Postgres answers
 * `SELECT 1` (on a connection of its own, so a busy pool does not read as "down"), Redis answers
 * PING, and no migration is pending (checked until it once holds, then remembered).
 */
export type CheckName = 'postgres' | 'redis' | 'migrations';

export interface Readiness {
  ready: boolean;
  /** "ok", or what is wrong, per dependency. */
  checks: Record<CheckName, string>;
}

export interface HealthDeps {
  databaseUrl: string;
  /** A connection whose commands fail fast while Redis is away (see createFailFastRedis). */
  redis: RedisClient;
  logger: Logger;
  /** Longest wait for each dependency; default 1000 ms. */
  timeoutMs?: number;
}

class TimeoutError extends Error {}

const timedOut = (ms: number) => () => new TimeoutError(`no answer within ${ms} ms`);

/** What a probe says about a failure: short and free of addresses; the log gets the detail. */
function describe(error: unknown): string {
  if (error instanceof TimeoutError) return error.message;
  return 'unreachable';
}

export class HealthChecks {
  private migrationsApplied = false;
  private lastReady: boolean | null = null;
  private readonly timeoutMs: number;

  constructor(private readonly deps: HealthDeps) {
    this.timeoutMs = deps.timeoutMs ?? 1000;
  }

  private inFlight: Promise<Readiness> | null = null;

  /**
   * Concurrent probes share the check in flight: each check opens a Postgres connection, and
   * /readyz is open to anyone, so a flood of probes costs one connection at a time, not one each.
   * A probe that arrives after a check settled starts a fresh one, so an outage shows at once.
   */
  readiness(): Promise<Readiness> {
    this.inFlight ??= this.check().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async check(): Promise<Readiness> {
    const [postgres, redis] = await Promise.all([this.checkPostgres(), this.checkRedis()]);
    const migrations = postgres === 'ok' ? await this.checkMigrations() : 'not checked: postgres is not ready';
    const checks = { postgres, redis, migrations };
    const ready = Object.values(checks).every((check) => check === 'ok');
    if (ready !== this.lastReady) {
      if (ready) this.deps.logger.info({ checks }, 'ready');
      else this.deps.logger.warn({ checks }, 'not ready');
      this.lastReady = ready;
    }
    return { ready, checks };
  }

  private async checkPostgres(): Promise<string> {
    const client = new pg.Client({
      connectionString: this.deps.databaseUrl,
      connectionTimeoutMillis: this.timeoutMs,
      query_timeout: this.timeoutMs,
    });
    client.on('error', () => undefined); // a connection cut mid-probe; the probe's own error says it
    try {
      await within(
        (async () => {
          await client.connect();
          await client.query('SELECT 1');
        })(),
        this.timeoutMs,
        timedOut(this.timeoutMs),
      );
      return 'ok';
    } catch (error) {
      this.deps.logger.debug({ err: error }, 'readiness: postgres check failed');
      return describe(error);
    } finally {
      void client.end().catch(() => undefined);
    }
  }

  private async checkRedis(): Promise<string> {
    try {
      const answer = await within(this.deps.redis.ping(), this.timeoutMs, timedOut(this.timeoutMs));
      return answer === 'PONG' ? 'ok' : `unexpected answer to PING: ${String(answer)}`;
    } catch (error) {
      this.deps.logger.debug({ err: error }, 'readiness: redis check failed');
      return describe(error);
    }
  }

  private async checkMigrations(): Promise<string> {
    if (this.migrationsApplied) return 'ok';
    try {
      const pending = await within(pendingMigrations(this.deps.databaseUrl), this.timeoutMs, timedOut(this.timeoutMs));
      if (pending.length > 0) return `${pending.length} pending: ${pending.join(', ')}`;
      this.migrationsApplied = true;
      return 'ok';
    } catch (error) {
      this.deps.logger.debug({ err: error }, 'readiness: migrations check failed');
      return describe(error);
    }
  }
}

/** The 503 answer of /readyz, as RFC 9457 problem details naming each failed dependency. */
export function notReadyProblem(readiness: Readiness) {
  const failed = Object.entries(readiness.checks).filter(([, check]) => check !== 'ok');
  return {
    type: '/problems/not-ready',
    title: 'Not Ready',
    status: 503,
    detail: failed.map(([name, check]) => `${name}: ${check}`).join('; '),
    checks: readiness.checks,
  };
}

/** The answers of /healthz, /readyz and /metrics as status, content type and body. */
export interface OpsAnswer {
  status: number;
  contentType: string;
  body: string;
}

export const JSON_TYPE = 'application/json; charset=utf-8';
export const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

export function livenessAnswer(): OpsAnswer {
  return { status: 200, contentType: JSON_TYPE, body: JSON.stringify({ status: 'ok' }) };
}

export async function readinessAnswer(health: HealthChecks): Promise<OpsAnswer> {
  const readiness = await health.readiness();
  if (readiness.ready) {
    return { status: 200, contentType: JSON_TYPE, body: JSON.stringify({ status: 'ready', checks: readiness.checks }) };
  }
  return { status: 503, contentType: PROBLEM_TYPE, body: JSON.stringify(notReadyProblem(readiness)) };
}
