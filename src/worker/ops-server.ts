import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../shared/infra/logger.js';
import {
  PROBLEM_TYPE,
  livenessAnswer,
  readinessAnswer,
  type HealthChecks,
  type OpsAnswer,
} from '../shared/infra/health.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from '../shared/telemetry/metrics.js';

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

async function answer(method: string | undefined, path: string, health: HealthChecks): Promise<OpsAnswer> {
  if (method !== 'GET' && method !== 'HEAD') {
    return problem(405, 'method-not-allowed', 'Method Not Allowed', `${method} is not served here`);
  }
  switch (path) {
    case '/metrics':
      return { status: 200, contentType: METRICS_CONTENT_TYPE, body: await renderMetrics() };
    case '/healthz':
      return livenessAnswer();
    case '/readyz':
      return readinessAnswer(health);
    default:
      return problem(404, 'not-found', 'Not Found', `no route for ${method} ${path}`);
  }
}

function problem(status: number, slug: string, title: string, detail: string): OpsAnswer {
  return {
    status,
    contentType: PROBLEM_TYPE,
    body: JSON.stringify({ type: `/problems/${slug}`, title, status, detail }),
  };
}

/**
 * A worker's own small HTTP server: GET /metrics, /healthz and /readyz, for Prometheus and the
 * orchestrator. If the port is taken (several workers on one host with the default port), it
 * warns and listens on any free port instead: a worker's job is to apply transactions, and it
 * should not refuse that over its metrics port. The port is in the "worker started" log line.
 */
export async function startOpsServer(
  options: { port: number; host: string; health: HealthChecks },
  logger: Logger,
): Promise<OpsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    answer(req.method, path, options.health)
      .catch((error: unknown) => {
        logger.error({ err: error, path }, 'ops request failed');
        return problem(500, 'internal-error', 'Internal Server Error', 'the request could not be completed');
      })
      .then((result) => {
        res.writeHead(result.status, { 'Content-Type': result.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : result.body);
      })
      .catch(() => res.destroy());
  });
  try {
    await listen(server, options.port, options.host);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || options.port === 0) throw error;
    logger.warn({ port: options.port }, 'metrics port in use (set METRICS_PORT per worker); listening on a free port');
    await listen(server, 0, options.host);
  }
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
