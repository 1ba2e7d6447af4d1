import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../shared/infra/config.js';
import { createDatabasePool } from '../shared/infra/db.js';
import { FinalizationListener, finalizationChannel } from '../shared/apply/finalization-notices.js';
import type { Logger } from '../shared/infra/logger.js';
import { createApplyQueue } from '../shared/infra/queue.js';
import { createFailFastRedis, createRedis } from '../shared/infra/redis.js';
import { HealthChecks } from '../shared/infra/health.js';
import { readOutboxBacklog } from '../shared/events/outbox-repository.js';
import { registerDatabasePool, registerOutbox, registerQueueDepth } from '../shared/telemetry/metrics.js';
import { closeRedis, settleWithin } from '../shared/infra/shutdown.js';
import { createApp } from './app.js';

export interface RunningApi {
  server: Server;
  port: number;
  /** Stops accepting connections, lets requests in flight finish, then closes connections. */
  close(): Promise<void>;
}

export async function startApi(config: Config, logger: Logger): Promise<RunningApi> {
  const pool = await createDatabasePool(config, 'wallet-api');
  const redis = createFailFastRedis(config, 'wallet-api', logger);
  const subscriber = createRedis(config, 'wallet-api-finalized', logger);
  const queue = createApplyQueue(redis, config.QUEUE_PREFIX);
  const finalization = new FinalizationListener(subscriber, finalizationChannel(config.QUEUE_PREFIX));
  await finalization.start();

  const health = new HealthChecks({ databaseUrl: config.DATABASE_URL, redis, logger });
  const unregisterMetrics = [
    registerDatabasePool('api', pool),
    registerQueueDepth(queue),
    registerOutbox(() => readOutboxBacklog(pool)),
  ];
  const app = createApp({ health, config, pool, redis, queue, finalization, logger });
  let stopping = false;
  const server = createServer((req, res) => {
    // While stopping, every answer closes its connection, so keep-alive clients move elsewhere.
    if (stopping) res.setHeader('Connection', 'close');
    void app(req, res);
  });
  // `Expect: 100-continue`: the app says "continue" once it has checked the request (key, size),
  // instead of Node saying it before the app has seen anything (middleware/json-body.ts).
  server.on('checkContinue', (req, res) => server.emit('request', req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.PORT, config.HOST, () => resolve());
  });
  // Keep-alive sockets from load balancers must outlive their idle timeout.
  server.keepAliveTimeout = 65_000;
  const port = (server.address() as AddressInfo).port;
  logger.info({ port }, 'api listening');

  return {
    server,
    port,
    async close() {
      stopping = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Requests that started before the stop leave their keep-alive connection idle when they
      // end; close those as they appear.
      const closeIdle = setInterval(() => server.closeIdleConnections(), 100);
      // Requests waiting on `Prefer: wait` answer now with what they have.
      await settleWithin(finalization.close());
      await closed;
      clearInterval(closeIdle);
      for (const unregister of unregisterMetrics) unregister();
      await settleWithin(queue.close());
      await closeRedis(subscriber);
      await closeRedis(redis);
      await pool.end();
      logger.info('api stopped');
    },
  };
}
