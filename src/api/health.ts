import { Router, type Response } from 'express';
import { livenessAnswer, readinessAnswer, type HealthChecks, type OpsAnswer } from '../shared/infra/health.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from '../shared/telemetry/metrics.js';

function send(res: Response, answer: OpsAnswer): void {
  res.status(answer.status).set('Content-Type', answer.contentType).set('Cache-Control', 'no-store').send(answer.body);
}

/**
 * Operator endpoints on the API's port: GET /healthz (the process is alive), GET /readyz
 * (Postgres, Redis and migrations; 503 problem+json naming what failed) and GET /metrics
 * (Prometheus text format). Mounted before anything that could refuse a probe (auth, rate limits).
 */
export function opsRoutes(health: HealthChecks): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => send(res, livenessAnswer()));
  router.get('/readyz', async (_req, res) => send(res, await readinessAnswer(health)));
  router.get('/metrics', async (_req, res) =>
    send(res, { status: 200, contentType: METRICS_CONTENT_TYPE, body: await renderMetrics() }),
  );
  return router;
}
