import { GroupTimeoutError } from '../shared/infra/group-commit.js';
import {
  BackendTerminatedError,
  BackendTerminatedUnexpectedlyError,
  ConnectionError,
  StatementTimeoutError,
} from 'slonik';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import type { z } from 'zod';
import {
  DuplicateFingerprintError,
  FingerprintReusedError,
  NotVoidableError,
  VoidExistsError,
} from '../shared/transactions/conflicts.js';
import { hasScope } from '../shared/auth/api-keys.js';
import { DuplicateExternalIdError } from '../shared/wallets/wallets.js';
import {
  DuplicateTransferFingerprintError,
  TransferFingerprintReusedError,
  TransferNotVoidableError,
  TransferVoidExistsError,
} from '../shared/transfers/transfers.js';
import {
  DuplicateHoldFingerprintError,
  HoldFingerprintReusedError,
  HoldNotActiveError,
} from '../shared/holds/holds.js';
import {
  ConflictError,
  NotFoundError,
  RuleViolationError,
  ValidationError,
  type InvalidField,
} from '../shared/domain/errors.js';
import type { Logger } from '../shared/infra/logger.js';
import { sendJson } from './json-response.js';
import { toHoldResponse, toTransactionResponse, toTransferResponse, toWalletResponse } from './schemas.js';

/** RFC 9457 problem details; `type` names one of the problems listed in README.md. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  [extension: string]: unknown;
}

const PROBLEM_JSON = 'application/problem+json';

export function problem(status: number, slug: string, title: string, detail: string, extra: object = {}): Problem {
  return { type: `/problems/${slug}`, title, status, detail, ...extra };
}

export function sendProblem(res: Response, body: Problem): void {
  sendJson(res, body.status, body, PROBLEM_JSON);
}

/** Parses one part of a request; a mismatch becomes a 400 naming each invalid field. */
export function parseRequest<S extends z.ZodTypeAny>(
  schema: S,
  value: unknown,
  part: 'body' | 'path' | 'query',
): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const invalidParams: InvalidField[] = parsed.error.issues.map((issue) => ({
    name: issue.path.length > 0 ? issue.path.join('.') : part,
    reason: issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message,
  }));
  throw new ValidationError(`the request ${part} is invalid`, invalidParams);
}

/** POST bodies must be JSON; anything else is refused before it is read. */
export const requireJsonBody: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
  if (req.is('application/json')) return next();
  sendProblem(
    res,
    problem(415, 'unsupported-media-type', 'Unsupported Media Type', 'send the body as application/json'),
  );
};

export const notFoundRoute: RequestHandler = (req, res) => {
  sendProblem(res, problem(404, 'not-found', 'Not Found', `no route for ${req.method} ${req.path}`));
};

/** body-parser's errors carry a `type` and a 4xx status. */
interface BodyParserError {
  type?: string;
  status?: number;
  expose?: boolean;
}

function bodyParserProblem(error: BodyParserError): Problem | null {
  switch (error.type) {
    case 'entity.parse.failed':
      return problem(400, 'malformed-json', 'Malformed JSON', 'the request body is not valid JSON');
    case 'entity.duplicate.key':
      return problem(400, 'malformed-json', 'Malformed JSON', 'the request body repeats a key within one object');
    case 'entity.too.large':
      return problem(413, 'body-too-large', 'Content Too Large', 'the request body exceeds the size limit');
    case 'entity.invalid.utf8':
      return problem(400, 'malformed-json', 'Malformed JSON', 'the request body is not valid UTF-8');
    case 'encoding.unsupported':
      return problem(
        415,
        'unsupported-content-encoding',
        'Unsupported Content-Encoding',
        'send the request body uncompressed (no Content-Encoding)',
      );
    case 'charset.unsupported':
      return problem(415, 'unsupported-media-type', 'Unsupported Media Type', 'send the body as UTF-8 JSON');
    default:
      if (error.expose && error.status && error.status >= 400 && error.status < 500) {
        return problem(error.status, 'bad-request', 'Bad Request', 'the request could not be read');
      }
      return null;
  }
}

/** The database is down, restarting or overloaded: not the client's doing, and worth a retry. */
function isDatabaseUnavailable(error: unknown): boolean {
  return (
    error instanceof ConnectionError ||
    error instanceof BackendTerminatedError ||
    error instanceof BackendTerminatedUnexpectedlyError ||
    error instanceof StatementTimeoutError ||
    // A group of reservations got no answer in time; a retry with the same fingerprint is safe.
    error instanceof GroupTimeoutError
  );
}

/** What the caller may see beyond its own request: the scopes of its key (none when unknown). */
export interface Viewer {
  scopes: readonly string[];
}

export function toProblem(error: unknown, viewer: Viewer = { scopes: [] }): Problem | null {
  if (error instanceof ValidationError) {
    return problem(400, 'validation-error', 'Invalid request', error.message, { invalidParams: error.invalidParams });
  }
  if (error instanceof NotFoundError) return problem(404, 'not-found', 'Not Found', error.message);
  if (error instanceof DuplicateExternalIdError) {
    // The id lets a client that created the wallet carry on; its contents are for readers only.
    const canRead = hasScope(viewer.scopes, 'wallets:read');
    return problem(409, 'duplicate-external-id', 'Wallet already exists', error.message, {
      walletId: error.existing.id,
      ...(canRead ? { wallet: toWalletResponse(error.existing) } : {}),
    });
  }
  if (error instanceof DuplicateFingerprintError) {
    return problem(409, 'duplicate-fingerprint', 'Fingerprint already used', error.message, {
      transaction: toTransactionResponse(error.existing),
    });
  }
  if (error instanceof DuplicateTransferFingerprintError) {
    return problem(409, 'duplicate-fingerprint', 'Fingerprint already used', error.message, {
      transfer: toTransferResponse(error.existing),
    });
  }
  if (error instanceof TransferNotVoidableError) {
    return problem(409, 'transfer-not-voidable', 'Transfer cannot be voided', error.message, {
      transfer: toTransferResponse(error.transfer),
    });
  }
  if (error instanceof TransferVoidExistsError) {
    return problem(409, 'transfer-void-exists', 'Transfer already voided or being voided', error.message, {
      transfer: toTransferResponse(error.transfer),
    });
  }
  if (error instanceof DuplicateHoldFingerprintError) {
    return problem(409, 'duplicate-fingerprint', 'Fingerprint already used', error.message, {
      hold: toHoldResponse(error.existing),
    });
  }
  if (error instanceof HoldNotActiveError) {
    return problem(409, 'hold-not-active', 'Hold is not active', error.message, { hold: toHoldResponse(error.hold) });
  }
  if (
    error instanceof FingerprintReusedError ||
    error instanceof TransferFingerprintReusedError ||
    error instanceof HoldFingerprintReusedError
  ) {
    return problem(409, 'fingerprint-reused', 'Fingerprint used by another request', error.message);
  }
  if (error instanceof VoidExistsError) {
    return problem(409, 'void-exists', 'Transaction already has a void', error.message, {
      transaction: toTransactionResponse(error.reversal),
    });
  }
  if (error instanceof NotVoidableError) {
    return problem(409, 'not-voidable', 'Transaction cannot be voided', error.message, {
      transaction: toTransactionResponse(error.transaction),
    });
  }
  if (error instanceof ConflictError) return problem(409, 'conflict', 'Conflict', error.message);
  if (error instanceof RuleViolationError) {
    return problem(422, error.slug, 'Request cannot be carried out', error.message);
  }
  if (isDatabaseUnavailable(error)) {
    return problem(503, 'service-unavailable', 'Service Unavailable', 'a dependency is unavailable; retry later');
  }
  if (error && typeof error === 'object' && 'type' in error) return bodyParserProblem(error as BodyParserError);
  // The router could not decode a path segment (e.g. `/wallets/%ZZ`).
  if (error instanceof URIError) return problem(400, 'bad-request', 'Bad Request', 'the request path is not valid');
  return null;
}

/** The one place errors become HTTP answers. Anything unexpected is a 500 that reveals nothing. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    const log = res.locals.log ?? logger;
    const known = toProblem(error, res.locals.principal);
    if (known) {
      if (error instanceof DuplicateFingerprintError) {
        res.location(`/wallets/${error.existing.walletId}/transactions/${error.existing.id}`);
      }
      if (error instanceof VoidExistsError) {
        res.location(`/wallets/${error.reversal.walletId}/transactions/${error.reversal.id}`);
      }
      if (error instanceof DuplicateExternalIdError) res.location(`/wallets/${error.existing.id}`);
      if (error instanceof DuplicateTransferFingerprintError) res.location(`/transfers/${error.existing.id}`);
      if (error instanceof DuplicateHoldFingerprintError) {
        res.location(`/wallets/${error.existing.walletId}/holds/${error.existing.id}`);
      }
      if (known.status === 503) {
        res.set('Retry-After', '5');
        log.warn({ err: error, method: req.method, path: req.path }, 'dependency unavailable');
      }
      return sendProblem(res, known);
    }
    log.error({ err: error, method: req.method, path: req.path }, 'request failed');
    sendProblem(res, problem(500, 'internal-error', 'Internal Server Error', 'the request could not be completed'));
  };
}
