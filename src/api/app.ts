import express, { type Express } from 'express';
import type { DatabasePool } from 'slonik';
import type { Config } from '../shared/config.js';
import type { FinalizationListener } from '../shared/finalization-notices.js';
import type { Logger } from '../shared/logger.js';
import type { ApplyQueue } from '../shared/queue.js';
import { errorHandler, notFoundRoute } from './problem.js';
import { transactionRoutes } from './routes/transactions.js';
import { walletRoutes } from './routes/wallets.js';

export interface AppDeps {
  config: Pick<Config, 'BODY_LIMIT' | 'MAX_PREFER_WAIT_S' | 'VOID_WINDOW_HOURS'>;
  pool: DatabasePool;
  queue: ApplyQueue;
  finalization: FinalizationListener;
  logger: Logger;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // strict: only objects and arrays are JSON bodies; the schemas then want an object.
  app.use(express.json({ limit: deps.config.BODY_LIMIT, strict: true, type: 'application/json' }));

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

  app.use(notFoundRoute);
  app.use(errorHandler(deps.logger));
  return app;
}
