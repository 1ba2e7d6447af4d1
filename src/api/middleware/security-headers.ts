import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * Security headers for the JSON API: helmet's defaults (HSTS, nosniff, frame and referrer rules)
 * with a content security policy that allows nothing, since no API answer is meant to be rendered;
 * and no caching of answers that hold balances. `/docs` sets its own, looser policy.
 */
export function securityHeaders(): RequestHandler[] {
  return [
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
      },
    }),
    (_req, res, next) => {
      res.set('Cache-Control', 'no-store');
      next();
    },
  ];
}
