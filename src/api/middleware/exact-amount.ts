import type { Request, Response } from 'express';

/**
 * JSON.parse turns `9.999999999999999999` into the float 10, so a too-precise amount would pass
 * as a valid one. The raw text of a numeric `"amount"` is kept from the body as it arrived and
 * validated instead of the parsed number: every digit the client sent counts.
 */
declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      amountLiteral?: string;
    }
  }
}

// A key named "amount" followed by a number literal. Inside JSON strings quotes are escaped, so
// this cannot match text in a description or label; a nested "amount" makes the body invalid anyway.
const AMOUNT_LITERAL = /"amount"\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/;

/** For express.json's `verify` hook: remembers the amount's literal text, if it is a number. */
export function captureAmountLiteral(_req: Request, res: Response, body: Buffer): void {
  const match = AMOUNT_LITERAL.exec(body.toString('utf8'));
  if (match) res.locals.amountLiteral = match[1];
}

/** The parsed body, with a numeric amount replaced by its literal text as sent. */
export function bodyWithExactAmount(req: Request, res: Response): unknown {
  const body: unknown = req.body;
  const literal = res.locals.amountLiteral;
  if (literal === undefined || typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const { amount } = body as { amount?: unknown };
  return typeof amount === 'number' ? { ...body, amount: literal } : body;
}
