import express, { type Express } from 'express';
import type { DatabasePool } from 'slonik';
import type { Config } from '../shared/infra/config.js';
import type { FinalizationListener } from '../shared/apply/finalization-notices.js';
import type { Logger } from '../shared/infra/logger.js';
import type { ApplyQueue } from '../shared/infra/queue.js';
import type { HealthChecks } from '../shared/infra/health.js';
import { httpMetrics } from '../shared/telemetry/http-metrics.js';
import { RateLimiter } from '../shared/auth/rate-limit.js';
import type { RedisClient } from '../shared/infra/redis.js';
import { ApiKeyVerifier, authenticate, rateLimit } from './auth.js';
import { docsRoutes } from './docs-page.js';
import { accessLog } from './middleware/access-log.js';
import { jsonBody } from './middleware/json-body.js';
import { noOptions } from './middleware/no-options.js';
import { requestId } from './middleware/request-id.js';
import { securityHeaders } from './middleware/security-headers.js';
import { opsRoutes } from './health.js';
import { errorHandler, notFoundRoute } from './problem.js';
import { lookupRoutes } from './routes/lookups.js';
import { transactionRoutes } from './routes/transactions.js';
import { transferRoutes } from './routes/transfers.js';
import { holdRoutes } from './routes/holds.js';
import { walletRoutes } from './routes/wallets.js';
import { webhookRoutes } from './routes/webhooks.js';

export interface AppDeps {
  config: Pick<
    Config,
    | 'BODY_LIMIT'
    | 'MAX_PREFER_WAIT_S'
    | 'HOLD_DEFAULT_EXPIRY_SECONDS'
    | 'HOLD_MAX_EXPIRY_SECONDS'
    | 'VOID_WINDOW_HOURS'
    | 'AUTH_DISABLED'
    | 'API_KEY_CACHE_TTL_MS'
    | 'RATE_LIMIT_PER_SECOND'
    | 'RATE_LIMIT_BURST'
    | 'RATE_LIMIT_UNAUTHENTICATED_PER_SECOND'
    | 'RATE_LIMIT_UNAUTHENTICATED_BURST'
    | 'QUEUE_PREFIX'
    | 'WEBHOOK_ALLOW_PRIVATE_TARGETS'
    | 'DEFAULT_CURRENCY'
  >;
  pool: DatabasePool;
  /** Where listings and searches read (DATABASE_READ_URL's replica); default `pool`. */
  readPool?: DatabasePool;
  /** For the rate limiter (a fail-fast connection). */
  redis: RedisClient;
  queue: ApplyQueue;
  finalization: FinalizationListener;
  logger: Logger;
  /** Readiness checks behind GET /readyz. */
  health: HealthChecks;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Flat names only (`labels[k]` stays one parameter): list-query.ts gathers and validates label
  // filters itself, so no parser builds nested objects (or prototypes) from a query string.
  app.set('query parser', 'simple');
  app.use(httpMetrics);
  // Every answer carries a request id and the security headers, probes and scrapes included.
  app.use(requestId(deps.logger));
  app.use(securityHeaders());
  // Probes and scrapes (/healthz, /readyz, /metrics) come next: nothing below may refuse them,
  // and they stay out of the access log (one line every few seconds per prober says nothing).
  app.use(opsRoutes(deps.health));
  app.use(accessLog(deps.logger));
  // Open: the API's description (/openapi.json, /docs). Then every other path needs a key.
  app.use(docsRoutes());
  if (deps.config.AUTH_DISABLED) {
    deps.logger.error('AUTH_DISABLED=true: API keys are NOT checked, every caller is admin. Local development only!');
  }
  app.use(
    authenticate({
      verifier: new ApiKeyVerifier(deps.pool, deps.config.API_KEY_CACHE_TTL_MS),
      disabled: deps.config.AUTH_DISABLED,
      // Its own key space: per address, apart from the per-key buckets below.
      addressLimiter: new RateLimiter(
        deps.redis,
        {
          perSecond: deps.config.RATE_LIMIT_UNAUTHENTICATED_PER_SECOND,
          burst: deps.config.RATE_LIMIT_UNAUTHENTICATED_BURST,
          prefix: `${deps.config.QUEUE_PREFIX}:unauthenticated`,
        },
        deps.logger,
      ),
    }),
  );
  app.use(
    rateLimit(
      new RateLimiter(
        deps.redis,
        {
          perSecond: deps.config.RATE_LIMIT_PER_SECOND,
          burst: deps.config.RATE_LIMIT_BURST,
          prefix: deps.config.QUEUE_PREFIX,
        },
        deps.logger,
      ),
    ),
  );
  app.use(noOptions);
  app.use(jsonBody(deps.config.BODY_LIMIT));

  app.use(lookupRoutes({ pool: deps.pool, readPool: deps.readPool ?? deps.pool }));
  app.use(walletRoutes(deps));
  app.use(
    transactionRoutes({
      logger: deps.logger,
      pool: deps.pool,
      queue: deps.queue,
      finalization: deps.finalization,
      maxPreferWaitSeconds: deps.config.MAX_PREFER_WAIT_S,
      voidWindowMs: deps.config.VOID_WINDOW_HOURS * 3_600_000,
    }),
  );
  app.use(
    transferRoutes({
      logger: deps.logger,
      pool: deps.pool,
      queue: deps.queue,
      finalization: deps.finalization,
      maxPreferWaitSeconds: deps.config.MAX_PREFER_WAIT_S,
    }),
  );
  app.use(
    holdRoutes({
      logger: deps.logger,
      pool: deps.pool,
      queue: deps.queue,
      finalization: deps.finalization,
      maxPreferWaitSeconds: deps.config.MAX_PREFER_WAIT_S,
      settings: {
        defaultExpirySeconds: deps.config.HOLD_DEFAULT_EXPIRY_SECONDS,
        maxExpirySeconds: deps.config.HOLD_MAX_EXPIRY_SECONDS,
      },
    }),
  );
  app.use(webhookRoutes({ pool: deps.pool, allowPrivateTargets: deps.config.WEBHOOK_ALLOW_PRIVATE_TARGETS }));

  app.use(notFoundRoute);
  app.use(errorHandler(deps.logger));
  return app;
}
