import type { RequestHandler } from 'express';
import type { Logger } from '../../shared/infra/logger.js';

/**
 * One line per request once its answer is sent: method, path, status, time taken and the request
 * id (the one echoed in X-Request-Id). Headers are never logged, so neither is an API key; the
 * query string is left out as well. Written directly on the app's logger rather than through a
 * per-request child logger: this runs for every request, so it stays cheap.
 */
export function accessLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.once('finish', () => {
      const status = res.statusCode;
      const line = {
        requestId: res.locals.requestId,
        req: { method: req.method, path: req.originalUrl.split('?')[0] },
        res: { status },
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      };
      if (status >= 500) logger.error(line, 'request failed');
      else logger.info(line, 'request completed');
    });
    next();
  };
}
