import express, { type RequestHandler } from 'express';
import { findDuplicateKey } from './json-duplicate-keys.js';

/**
 * Request bodies are read as UTF-8 JSON and nothing else, so every check below reads the same
 * characters the parser does:
 * - a body with a Content-Encoding (gzip, br, deflate, ...) is refused with 415, not inflated;
 * - a charset other than UTF-8 is refused with 415 (a UTF-16 or UTF-7 body is never decoded);
 * - bytes that are not UTF-8 are a 400;
 * - a key repeated within one object is a 400 (json-duplicate-keys.ts);
 * - a numeric `amount` is kept as the literal text the client sent (JSON.parse would round
 *   `9.999999999999999999` to 10), read through the reviver's `context.source`, so an escaped
 *   key such as `"\u0061mount"` is judged the same as `"amount"`.
 */

/** An error the error handler maps by `type`, like body-parser's own (see problem.ts). */
export class BodyReadError extends Error {
  readonly expose = true;

  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const CHARSET = /;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/i;

/** The charset parameter of a Content-Type, lower-cased, or null when there is none. */
export function contentTypeCharset(contentType: string | undefined): string | null {
  const match = contentType ? CHARSET.exec(contentType) : null;
  if (!match) return null;
  return (match[1] ?? match[2] ?? '').toLowerCase();
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** JSON text to a value, with a top-level numeric `amount` replaced by its literal text. */
export function parseJsonKeepingAmountText(text: string): unknown {
  const amountLiterals = new WeakMap<object, string>();
  const value = JSON.parse(text, function (key, parsed, context) {
    if (key === 'amount' && typeof parsed === 'number' && context.source !== undefined) {
      amountLiterals.set(this, context.source);
    }
    return parsed;
  });
  if (typeof value !== 'object' || value === null) return value;
  const literal = amountLiterals.get(value);
  return literal === undefined ? value : { ...value, amount: literal };
}

/**
 * A request that announces a body over the limit is refused before a byte of it is read: 413 at
 * once, and the connection closes (body-parser would read, and wait for, the whole body first, so
 * a client could hold a connection open until the request timeout). A request that asked
 * `Expect: 100-continue` is told to go on only here, once its size is known to be fine (see
 * server.ts), so a well-behaved client never sends an oversized body at all.
 */
function refuseOversizedBody(limitBytes: number): RequestHandler {
  return (req, res, next) => {
    const length = Number(req.get('content-length'));
    if (length > limitBytes) {
      res.set('Connection', 'close');
      return next(new BodyReadError(413, 'entity.too.large', `the body is ${length} bytes, over ${limitBytes}`));
    }
    if (req.get('expect')?.toLowerCase() === '100-continue') res.writeContinue();
    next();
  };
}

/** Reads `application/json` bodies (other types are left unread for the routes to refuse). */
export function jsonBody(limitBytes: number): RequestHandler[] {
  const readBytes = express.raw({ type: 'application/json', limit: limitBytes, inflate: false });
  const parse: RequestHandler = (req, _res, next) => {
    if (!Buffer.isBuffer(req.body)) return next();
    const charset = contentTypeCharset(req.get('content-type'));
    if (charset !== null && charset !== 'utf-8' && charset !== 'utf8') {
      throw new BodyReadError(415, 'charset.unsupported', `unsupported charset "${charset}"`);
    }
    let text: string;
    try {
      text = utf8.decode(req.body);
    } catch {
      throw new BodyReadError(400, 'entity.invalid.utf8', 'the request body is not valid UTF-8');
    }
    if (text.trim() === '') {
      req.body = {};
      return next();
    }
    const duplicate = findDuplicateKey(text);
    if (duplicate !== null) throw new BodyReadError(400, 'entity.duplicate.key', `duplicate key: ${duplicate}`);
    try {
      req.body = parseJsonKeepingAmountText(text);
    } catch {
      throw new BodyReadError(400, 'entity.parse.failed', 'the request body is not valid JSON');
    }
    next();
  };
  return [refuseOversizedBody(limitBytes), readBytes, parse];
}
