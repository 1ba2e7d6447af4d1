import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { Router, type Response } from 'express';
import type { DatabasePool } from 'slonik';
import type { FinalizationListener } from '../../shared/apply/finalization-notices.js';
import type { Logger } from '../../shared/infra/logger.js';
import type { ApplyQueue } from '../../shared/infra/queue.js';
import { findHold, type HoldRow } from '../../shared/holds/hold-repository.js';
import {
  getHold,
  listWalletHolds,
  requestCapture,
  requestHold,
  requestRelease,
  type HoldSettings,
} from '../../shared/holds/holds.js';
import { WalletCurrencies } from '../../shared/wallets/wallets.js';
import { sendJson } from '../json-response.js';
import { z } from '../openapi-zod.js';
import { defineOperation, problemContent, registerOperations, route } from '../operation.js';
import { preferredWaitSeconds } from '../prefer-wait.js';
import { parseRequest, requireJsonBody } from '../problem.js';
import {
  captureHoldBody,
  createHoldBody,
  duplicateHoldFingerprintProblemResponse,
  fingerprintReusedProblemResponse,
  holdListQuery,
  holdPageResponse,
  holdParams,
  holdProblemResponse,
  holdResponse,
  releaseHoldBody,
  toHoldResponse,
  validationProblemResponse,
  walletParams,
} from '../schemas.js';

const holdJson = { 'application/json': { schema: holdResponse } };
const location = z.object({
  Location: z.string().openapi({ example: '/wallets/1/holds/a3e863bf-14de-494a-bd39-d2bd5ac1ed2d' }),
});
const badRequest = {
  description: 'An invalid path, query or body.',
  content: problemContent(validationProblemResponse),
};
const notActive = {
  description:
    '`/problems/hold-not-active`: capture, release or expiry came first (or the hold is still pending, or was rejected); the detail says which and the body holds the hold. Also `/problems/fingerprint-reused` for a capture fingerprint used by another transaction.',
  content: problemContent(z.union([holdProblemResponse, fingerprintReusedProblemResponse])),
};
const prefer = z.object({
  prefer: z.string().optional().openapi({ description: 'RFC 7240 `wait=N`.', example: 'wait=5' }),
});

export const holdOperations = {
  createHold: defineOperation({
    operationId: 'createHold',
    method: 'post',
    path: '/wallets/:id/holds',
    scope: 'transactions:write',
    tags: ['holds'],
    summary: "Reserve part of a wallet's available balance (two-phase: capture or release it later)",
    description:
      "Reserves a pending hold and answers 202. The wallet's queue decides it in order with the wallet's transactions: active when the available balance (balance minus live holds) covers it, else rejected `insufficient_funds`. Unless captured or released first, the workers expire it at `expiresAt`.",
    request: {
      params: walletParams,
      headers: prefer,
      body: { required: true, content: { 'application/json': { schema: createHoldBody } } },
    },
    responses: {
      201: { description: 'With `Prefer: wait`: active in time.', headers: location, content: holdJson },
      202: {
        description: 'Accepted: pending (or still pending after the wait).',
        headers: location,
        content: holdJson,
      },
      400: {
        description:
          'Invalid body: a non-positive amount, more fractional digits than the currency has, an expiry out of range, a missing fingerprint, unknown fields.',
        content: problemContent(validationProblemResponse),
      },
      404: { description: 'No such wallet; nothing was reserved.', content: problemContent() },
      409: {
        description:
          'The fingerprint is used: a replay of the same request gets `/problems/duplicate-fingerprint` with its hold; any other `/problems/fingerprint-reused`.',
        headers: location,
        content: problemContent(z.union([duplicateHoldFingerprintProblemResponse, fingerprintReusedProblemResponse])),
      },
      422: {
        description: 'With `Prefer: wait`: rejected in time (the hold, with `reason` `insufficient_funds`).',
        headers: location,
        content: holdJson,
      },
    },
  }),
  getHold: defineOperation({
    operationId: 'getHold',
    method: 'get',
    path: '/wallets/:id/holds/:holdId',
    scope: 'wallets:read',
    tags: ['holds'],
    summary: 'Read a hold',
    request: { params: holdParams },
    responses: {
      200: { description: 'The hold.', content: holdJson },
      400: badRequest,
      404: { description: 'The wallet has no such hold.', content: problemContent() },
    },
  }),
  listWalletHolds: defineOperation({
    operationId: 'listWalletHolds',
    method: 'get',
    path: '/wallets/:id/holds',
    scope: 'wallets:read',
    tags: ['holds'],
    summary: "A wallet's holds, newest first, optionally of one status",
    request: { params: walletParams, query: holdListQuery },
    responses: {
      200: {
        description:
          "A page of holds. Filtered by status, a page reads at most 10,000 of the wallet's holds: it can hold fewer than `limit`, even none, and still carry a `nextCursor`.",
        content: { 'application/json': { schema: holdPageResponse } },
      },
      400: badRequest,
      404: { description: 'No such wallet.', content: problemContent() },
    },
  }),
  captureHold: defineOperation({
    operationId: 'captureHold',
    method: 'post',
    path: '/wallets/:id/holds/:holdId/capture',
    scope: 'transactions:write',
    tags: ['holds'],
    summary: 'Capture an active hold: debit at most its amount, release the rest',
    description:
      "Flips the hold to captured (once: capture, release and expiry exclude each other) and reserves the capture debit, an ordinary transaction of the wallet with its own refno, which the wallet's queue applies; the hold leaves `held` with it. A repeat of the same capture answers 200 with the hold.",
    request: {
      params: holdParams,
      body: { required: false, content: { 'application/json': { schema: captureHoldBody } } },
    },
    responses: {
      200: { description: 'A replay: the hold was captured for this amount already.', content: holdJson },
      202: { description: 'Captured; the debit is pending in the wallet queue.', content: holdJson },
      400: {
        description: 'Invalid body: an amount above the held amount, not positive, or with too many digits.',
        content: problemContent(validationProblemResponse),
      },
      404: { description: 'The wallet has no such hold.', content: problemContent() },
      409: notActive,
    },
  }),
  releaseHold: defineOperation({
    operationId: 'releaseHold',
    method: 'post',
    path: '/wallets/:id/holds/:holdId/release',
    scope: 'transactions:write',
    tags: ['holds'],
    summary: 'Release an active hold whole',
    description:
      "Flips the hold to released (once: capture, release and expiry exclude each other); the wallet's queue then takes it out of `held`. A repeat answers 200.",
    request: {
      params: holdParams,
      body: { required: false, content: { 'application/json': { schema: releaseHoldBody } } },
    },
    responses: {
      200: { description: 'A replay: the hold was released already.', content: holdJson },
      202: { description: "Released; the wallet's queue gives the amount back to `available`.", content: holdJson },
      400: badRequest,
      404: { description: 'The wallet has no such hold.', content: problemContent() },
      409: notActive,
    },
  }),
};

export function registerHoldPaths(registry: OpenAPIRegistry): void {
  registerOperations(registry, holdOperations);
}

export interface HoldRouteDeps {
  logger: Logger;
  pool: DatabasePool;
  queue: ApplyQueue;
  finalization: FinalizationListener;
  maxPreferWaitSeconds: number;
  settings: HoldSettings;
}

function sendHold(res: Response, status: number, hold: HoldRow): void {
  sendJson(res, status, toHoldResponse(hold));
}

export function holdRoutes(deps: HoldRouteDeps): Router {
  const router = Router();
  const currencies = new WalletCurrencies(deps.pool);
  const holdDeps = { db: deps.pool, queue: deps.queue, currencies };

  route(router, holdOperations.createHold, requireJsonBody, async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    const body = parseRequest(createHoldBody, req.body, 'body');
    const { hold, enqueued } = await requestHold(holdDeps, deps.settings, { ...body, walletId: id });
    if (!enqueued) {
      (res.locals.log ?? deps.logger).warn(
        { walletId: id, holdId: hold.id },
        'queue unreachable; the sweeper will enqueue the wallet',
      );
    }
    res.location(`/wallets/${id}/holds/${hold.id}`);
    const waitSeconds = preferredWaitSeconds(req.get('prefer'), deps.maxPreferWaitSeconds);
    if (waitSeconds === 0) return sendHold(res, 202, hold);
    res.set('Preference-Applied', `wait=${waitSeconds}`);
    const final = await deps.finalization
      .waitFor(id, waitSeconds * 1000, async () => {
        const current = await findHold(deps.pool, id, hold.id);
        return current && current.status !== 'pending' ? current : null;
      })
      .catch((error: unknown) => {
        deps.logger.warn({ err: error, holdId: hold.id }, 'could not wait for the outcome; answering 202');
        return null;
      });
    const latest = final ?? hold;
    sendHold(res, latest.status === 'pending' ? 202 : latest.status === 'rejected' ? 422 : 201, latest);
  });

  route(router, holdOperations.captureHold, async (req, res) => {
    const { id, holdId } = parseRequest(holdParams, req.params, 'path');
    const body = parseRequest(captureHoldBody, req.body ?? {}, 'body');
    const { hold, replayed } = await requestCapture(holdDeps, id, holdId, body);
    sendHold(res, replayed ? 200 : 202, hold);
  });

  route(router, holdOperations.releaseHold, async (req, res) => {
    const { id, holdId } = parseRequest(holdParams, req.params, 'path');
    const body = parseRequest(releaseHoldBody, req.body ?? {}, 'body');
    const { hold, replayed } = await requestRelease(holdDeps, id, holdId, { fingerprint: body.fingerprint ?? null });
    sendHold(res, replayed ? 200 : 202, hold);
  });

  route(router, holdOperations.getHold, async (req, res) => {
    const { id, holdId } = parseRequest(holdParams, req.params, 'path');
    sendHold(res, 200, await getHold(deps.pool, id, holdId));
  });

  route(router, holdOperations.listWalletHolds, async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    const query = parseRequest(holdListQuery, req.query, 'query');
    const page = await listWalletHolds({ db: deps.pool, currencies }, id, {
      status: query.status ?? null,
      cursor: query.cursor ?? null,
      limit: query.limit,
    });
    sendJson(res, 200, { items: page.items.map(toHoldResponse), nextCursor: page.nextCursor });
  });

  return router;
}
