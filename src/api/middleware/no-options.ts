import type { RequestHandler } from 'express';
import { notFoundRoute } from '../problem.js';

/**
 * Express answers OPTIONS itself with the route's `Allow` methods, before any scope check, so any
 * key could map the API. No client of this API needs OPTIONS (there is no CORS), so every OPTIONS
 * gets the same 404 as a path no route matches, whatever the key may do.
 */
export const noOptions: RequestHandler = (req, res, next) => {
  if (req.method === 'OPTIONS') return notFoundRoute(req, res, next);
  next();
};
