import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from '../../shared/infra/logger.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      requestId?: string;
      /** The app's logger with this request's id on every line. */
      log?: Logger;
    }
  }
}

/** What an incoming id may look like to be kept: short, and nothing that could forge a log or header. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const REQUEST_ID_HEADER = 'X-Request-Id';

/**
 * Keeps the caller's `X-Request-Id` if it is sane, otherwise makes one; echoes it in the answer
 * and gives the request a child logger that puts it on every line.
 */
export function requestId(logger: Logger): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const incoming = req.get(REQUEST_ID_HEADER);
    const id = incoming !== undefined && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = id;
    // Made on first use: most requests never log anything of their own.
    let log: Logger | undefined;
    Object.defineProperty(res.locals, 'log', {
      configurable: true,
      enumerable: true,
      get: () => (log ??= logger.child({ requestId: id })),
    });
    res.set(REQUEST_ID_HEADER, id);
    next();
  };
}
