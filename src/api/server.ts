import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import type { Config } from '../shared/infra/config.js';
import { createDatabasePool, createReadPool, readReplicaLagSeconds } from '../shared/infra/db.js';
import { FinalizationListener, finalizationChannel } from '../shared/apply/finalization-notices.js';
import type { Logger } from '../shared/infra/logger.js';
import { createApplyQueue, queueLayout } from '../shared/infra/queue.js';
import { createFailFastRedis, createRedis } from '../shared/infra/redis.js';
import { HealthChecks } from '../shared/infra/health.js';
import { readOutboxBacklog } from '../shared/events/outbox-repository.js';
import {
  registerDatabasePool,
  registerOutbox,
  registerQueueDepth,
  registerReplicaLag,
} from '../shared/telemetry/metrics.js';
import { closeRedis, settleWithin } from '../shared/infra/shutdown.js';
import { createApp } from './app.js';

export interface RunningApi {
  server: Server;
  port: number;
  /** Stops accepting connections, lets requests in flight finish, then closes connections. */
  close(): Promise<void>;
}

/**
 * While stopping, a keep-alive connection between requests is closed once it has been quiet this
 * long, not at once: its client may have sent the next request already, unread in the socket yet,
 * and closing then would reset that request unanswered. (A client that reuses a connection after
 * this long races the close, as with any keep-alive timeout: HTTP leaves that retry to the client.)
 */
const QUIET_BEFORE_CLOSE_MS = 1_000;

/** Follows each connection of `server`: how many requests it is answering, since when it is quiet. */
function trackConnections(server: Server) {
  const connections = new Map<Socket, { answering: number; quietSince: number }>();
  server.on('connection', (socket: Socket) => {
    connections.set(socket, { answering: 0, quietSince: Date.now() });
    socket.once('close', () => connections.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const connection = connections.get(req.socket);
    if (!connection) return;
    connection.answering += 1;
    res.once('close', () => {
      connection.answering -= 1;
      connection.quietSince = Date.now();
    });
  });
  return {
    /** Closes the connections that answer nothing and have been quiet for `quietMs`. */
    closeQuiet(quietMs: number): void {
      for (const [socket, connection] of connections) {
        if (connection.answering === 0 && Date.now() - connection.quietSince >= quietMs) socket.destroy();
      }
    },
  };
}

export async function startApi(config: Config, logger: Logger): Promise<RunningApi> {
  const pool = await createDatabasePool(config, 'wallet-api');
  const readPool = await createReadPool(config, 'wallet-api-read');
  const redis = createFailFastRedis(config, 'wallet-api', logger);
  const subscriber = createRedis(config, 'wallet-api-finalized', logger);
  const queue = createApplyQueue(redis, config.QUEUE_PREFIX, queueLayout(config));
  const finalization = new FinalizationListener(subscriber, finalizationChannel(config.QUEUE_PREFIX));
  await finalization.start();

  const health = new HealthChecks({ databaseUrl: config.DATABASE_URL, redis, logger });
  const unregisterMetrics = [
    registerDatabasePool('api', pool),
    ...(readPool
      ? [
          registerDatabasePool('api-read', readPool),
          registerReplicaLag('api-read', () => readReplicaLagSeconds(readPool)),
        ]
      : []),
    ...queue.shards.map((shard) => registerQueueDepth(shard)),
    registerOutbox(() => readOutboxBacklog(pool)),
  ];
  const app = createApp({
    health,
    config,
    pool,
    ...(readPool ? { readPool } : {}),
    redis,
    queue,
    finalization,
    logger,
  });
  let stopping = false;
  const server = createServer((req, res) => {
    // While stopping, every answer closes its connection, so keep-alive clients move elsewhere.
    if (stopping) res.setHeader('Connection', 'close');
    void app(req, res);
  });
  // `Expect: 100-continue`: the app says "continue" once it has checked the request (key, size),
  // instead of Node saying it before the app has seen anything (middleware/json-body.ts).
  server.on('checkContinue', (req, res) => server.emit('request', req, res));
  const connections = trackConnections(server);
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
      // Stops listening. Not `server.close()`: that also destroys at once every connection between
      // two requests, even one whose next request has arrived but is not read yet.
      const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
      // A connection answering a request closes after its answer (Connection: close); a quiet one
      // once it has stayed quiet for a moment, checked after the event loop's poll phase
      // (setImmediate), which reads whatever has arrived by then.
      const closeIdle = setInterval(() => setImmediate(() => connections.closeQuiet(QUIET_BEFORE_CLOSE_MS)), 100);
      // Requests waiting on `Prefer: wait` answer now with what they have.
      await settleWithin(finalization.close());
      await closed;
      clearInterval(closeIdle);
      for (const unregister of unregisterMetrics) unregister();
      await settleWithin(queue.close());
      await closeRedis(subscriber);
      await closeRedis(redis);
      await pool.end();
      await readPool?.end();
      logger.info('api stopped');
    },
  };
}
