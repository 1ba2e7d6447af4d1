import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { Router, type Request, type Response } from 'express';
import type { DatabasePool } from 'slonik';
import type { FinalizationListener } from '../../shared/apply/finalization-notices.js';
import type { Logger } from '../../shared/infra/logger.js';
import type { ApplyQueue } from '../../shared/infra/queue.js';
import type { TransactionRow } from '../../shared/transactions/transaction-repository.js';
import {
  getLatestApplied,
  getTransaction,
  isFinal,
  TransactionReserver,
  type Reservation,
} from '../../shared/transactions/transactions.js';
import { requestVoid } from '../../shared/transactions/voids.js';
import { findWalletTransaction } from '../../shared/transactions/transaction-repository.js';
import { sendJson } from '../json-response.js';
import { z } from '../openapi-zod.js';
import { defineOperation, problemContent, registerOperations, route } from '../operation.js';
import { preferredWaitSeconds } from '../prefer-wait.js';
import { parseRequest, requireJsonBody } from '../problem.js';
import {
  createTransactionBody,
  duplicateFingerprintProblemResponse,
  fingerprintReusedProblemResponse,
  notVoidableProblemResponse,
  voidExistsProblemResponse,
  latestTransactionResponse,
  toLatestTransactionResponse,
  toTransactionResponse,
  transactionParams,
  transactionResponse,
  validationProblemResponse,
  voidTransactionBody,
  walletParams,
} from '../schemas.js';

const transactionJson = { 'application/json': { schema: transactionResponse } };
const location = z.object({
  Location: z.string().openapi({ example: '/wallets/1/transactions/a3e863bf-14de-494a-bd39-d2bd5ac1ed2d' }),
});
const prefer = z.object({
  prefer: z.string().optional().openapi({
    description: 'RFC 7240 `wait=N`: wait up to N seconds (at most MAX_PREFER_WAIT_S) for the final state.',
    example: 'wait=5',
  }),
});
const postResponses = {
  201: { description: 'With `Prefer: wait`: applied in time.', headers: location, content: transactionJson },
  202: {
    description: 'Accepted: pending (or still pending after the wait).',
    headers: location,
    content: transactionJson,
  },
  400: {
    description: 'Invalid path or body, malformed JSON, or a key repeated within an object.',
    content: problemContent(validationProblemResponse),
  },
  422: {
    description: 'With `Prefer: wait`: rejected in time (see `reason`).',
    headers: location,
    content: transactionJson,
  },
};
const badPath = {
  description: 'The wallet or transaction id is malformed.',
  content: problemContent(validationProblemResponse),
};

export const transactionOperations = {
  postTransaction: defineOperation({
    operationId: 'postTransaction',
    method: 'post',
    path: '/wallets/:id/transactions',
    scope: 'transactions:write',
    tags: ['transactions'],
    summary: 'Post a transaction (deposit or withdrawal)',
    description:
      'Reserves the fingerprint and answers 202 with the pending transaction; a worker applies it (or rejects an overdraft) in order.',
    request: {
      params: walletParams,
      headers: prefer,
      body: { required: true, content: { 'application/json': { schema: createTransactionBody } } },
    },
    responses: {
      ...postResponses,
      404: { description: 'No such wallet; nothing was reserved.', content: problemContent() },
      409: {
        description:
          'The fingerprint is used. A replay of the same request (same wallet, amount, labels, description) gets `/problems/duplicate-fingerprint` with the transaction it made and its `Location`; any other request gets `/problems/fingerprint-reused`, which discloses nothing.',
        headers: location,
        content: problemContent(z.union([duplicateFingerprintProblemResponse, fingerprintReusedProblemResponse])),
      },
    },
  }),
  voidTransaction: defineOperation({
    operationId: 'voidTransaction',
    method: 'post',
    path: '/wallets/:id/transactions/:txId/void',
    scope: 'transactions:write',
    tags: ['transactions'],
    summary: 'Void an applied transaction with a reversal',
    request: {
      params: transactionParams,
      headers: prefer,
      body: { required: true, content: { 'application/json': { schema: voidTransactionBody } } },
    },
    responses: {
      ...postResponses,
      404: { description: 'No such wallet or transaction.', content: problemContent() },
      409: {
        description:
          'The transaction already has a live void (`/problems/void-exists` with that reversal and its `Location`, whatever fingerprint this request carries); it cannot be voided (`/problems/not-voidable`: pending, rejected or a reversal; the body holds it); or the fingerprint is used (`/problems/duplicate-fingerprint` for a replay of this void, `/problems/fingerprint-reused` otherwise).',
        headers: location,
        content: problemContent(
          z.union([
            voidExistsProblemResponse,
            notVoidableProblemResponse,
            duplicateFingerprintProblemResponse,
            fingerprintReusedProblemResponse,
          ]),
        ),
      },
      422: {
        description:
          'With `Prefer: wait`: the reversal was rejected in time; or the void breaks a rule (e.g. past its window).',
        headers: location,
        content: { ...transactionJson, ...problemContent() },
      },
    },
  }),
  getLatestTransaction: defineOperation({
    operationId: 'getLatestTransaction',
    method: 'get',
    path: '/wallets/:id/transactions/latest',
    scope: 'wallets:read',
    tags: ['transactions'],
    summary: "The wallet's latest applied transaction (the original service's shape)",
    request: { params: walletParams },
    responses: {
      200: {
        description: 'The latest applied transaction.',
        content: { 'application/json': { schema: latestTransactionResponse } },
      },
      400: badPath,
      404: { description: 'No such wallet, or nothing applied yet.', content: problemContent() },
    },
  }),
  getTransaction: defineOperation({
    operationId: 'getTransaction',
    method: 'get',
    path: '/wallets/:id/transactions/:txId',
    scope: 'wallets:read',
    tags: ['transactions'],
    summary: 'Read a transaction (poll its status)',
    request: { params: transactionParams },
    responses: {
      200: { description: 'The transaction.', content: transactionJson },
      400: badPath,
      404: { description: 'No such transaction in this wallet.', content: problemContent() },
    },
  }),
};

export function registerTransactionPaths(registry: OpenAPIRegistry): void {
  registerOperations(registry, transactionOperations);
}

export interface TransactionRouteDeps {
  logger: Logger;
  pool: DatabasePool;
  queue: ApplyQueue;
  finalization: FinalizationListener;
  maxPreferWaitSeconds: number;
  voidWindowMs: number;
}

/** 202 while pending; with `Prefer: wait`, 201 once applied and 422 once rejected. */
function statusFor(transaction: TransactionRow): number {
  if (transaction.status === 'applied' || transaction.status === 'voided') return 201;
  if (transaction.status === 'rejected') return 422;
  return 202;
}

function sendTransaction(res: Response, status: number, transaction: TransactionRow): void {
  sendJson(res, status, toTransactionResponse(transaction));
}

export function transactionRoutes(deps: TransactionRouteDeps): Router {
  const router = Router();
  const reserver = new TransactionReserver({ db: deps.pool, queue: deps.queue });

  /** 202 with the pending transaction, or with `Prefer: wait=N` its final state if it gets there in time. */
  async function answerReservation(req: Request, res: Response, { transaction, enqueued }: Reservation) {
    const { walletId, id } = transaction;
    if (!enqueued) {
      (res.locals.log ?? deps.logger).warn(
        { walletId, transactionId: id },
        'queue unreachable; the sweeper will enqueue the wallet',
      );
    }
    res.location(`/wallets/${walletId}/transactions/${id}`);
    const waitSeconds = preferredWaitSeconds(req.get('prefer'), deps.maxPreferWaitSeconds);
    if (waitSeconds === 0) return sendTransaction(res, 202, transaction);

    res.set('Preference-Applied', `wait=${waitSeconds}`);
    // The transaction is accepted whatever happens while waiting: if a re-read fails (the
    // database went away), the answer is still the 202 it earned, not a 503.
    const final = await deps.finalization
      .waitFor(walletId, waitSeconds * 1000, async () => {
        const current = await findWalletTransaction(deps.pool, walletId, id);
        return current && isFinal(current) ? current : null;
      })
      .catch((error: unknown) => {
        deps.logger.warn({ err: error, walletId, transactionId: id }, 'could not wait for the outcome; answering 202');
        return null;
      });
    const latest = final ?? transaction;
    sendTransaction(res, statusFor(latest), latest);
  }

  route(router, transactionOperations.postTransaction, requireJsonBody, async (req, res) => {
    const { id: walletId } = parseRequest(walletParams, req.params, 'path');
    const body = parseRequest(createTransactionBody, req.body, 'body');
    await answerReservation(req, res, await reserver.reserve(walletId, body));
  });

  route(router, transactionOperations.voidTransaction, requireJsonBody, async (req, res) => {
    const { id: walletId, txId } = parseRequest(transactionParams, req.params, 'path');
    const body = parseRequest(voidTransactionBody, req.body, 'body');
    const voidDeps = { db: deps.pool, queue: deps.queue, voidWindowMs: deps.voidWindowMs };
    await answerReservation(req, res, await requestVoid(voidDeps, walletId, txId, body));
  });

  // Registered before `/:txId` so that "latest" is not read as a transaction id.
  route(router, transactionOperations.getLatestTransaction, async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    sendJson(res, 200, toLatestTransactionResponse(await getLatestApplied(deps.pool, id)));
  });

  route(router, transactionOperations.getTransaction, async (req, res) => {
    const { id, txId } = parseRequest(transactionParams, req.params, 'path');
    sendTransaction(res, 200, await getTransaction(deps.pool, id, txId));
  });

  return router;
}
