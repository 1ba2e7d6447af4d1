import type { Response } from 'express';
import { decimalToJsonNumber } from '../shared/ledger/money.js';

/**
 * Money leaves the service as JSON numbers written from the exact decimal text
 * (`35.0`, `12.34`), never through a JS float. A `Decimal` in a response body is rendered so.
 */
export class Decimal {
  constructor(readonly text: string) {}

  toJSON(): string {
    return `\u0000decimal:${decimalToJsonNumber(this.text)}\u0000`;
  }
}

// Inputs can never hold NUL (see validation.ts), so only a Decimal produces this marker.
const DECIMAL_MARKER = /"\\u0000decimal:(-?\d+\.\d+)\\u0000"/g;

export function renderJson(body: unknown): string {
  return JSON.stringify(body).replace(DECIMAL_MARKER, '$1');
}

export function sendJson(res: Response, status: number, body: unknown, contentType = 'application/json'): void {
  res.status(status).type(contentType).send(renderJson(body));
}
