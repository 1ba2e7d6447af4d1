import type { Response } from 'express';
import { decimalToJsonNumber } from '../shared/ledger/money.js';

/**
 * Money leaves the service as JSON numbers written from the exact decimal text
 * (`35.0`, `12.34`), never through a JS float. A `Decimal` in a response body is rendered so.
 */
export class Decimal {
  constructor(readonly text: string) {}

  toJSON(): object {
    return JSON.rawJSON(decimalToJsonNumber(this.text));
  }
}

export function sendJson(res: Response, status: number, body: unknown, contentType = 'application/json'): void {
  res.status(status).type(contentType).send(JSON.stringify(body));
}
