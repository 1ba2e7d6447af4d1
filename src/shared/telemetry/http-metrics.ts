import type { Request, RequestHandler } from 'express';
import { UNMATCHED_ROUTE, recordHttpRequest } from './metrics.js';

/**
 * The route template a request matched (`/wallets/:id/transactions`), never its raw URL: one
 * series per route, not one per wallet. Requests no route matched share one label.
 */
export function routeLabel(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  if (route === undefined) return UNMATCHED_ROUTE;
  // Our routes are strings; a RegExp route is labelled by its source, never by the URL it matched.
  const template = typeof route === 'string' ? route : route instanceof RegExp ? route.source : '(pattern)';
  const path = `${req.baseUrl}${template}`;
  return path === '' ? '/' : path;
}

/** Counts and times every answered request by method, route template and status. Mount it first. */
export const httpMetrics: RequestHandler = (req, res, next) => {
  const started = process.hrtime.bigint();
  res.once('finish', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    recordHttpRequest(req.method, routeLabel(req), res.statusCode, seconds);
  });
  next();
};
