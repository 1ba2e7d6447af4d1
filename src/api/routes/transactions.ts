import { Router, type Request, type Response } from 'express';
import type { DatabasePool } from 'slonik';
import type { FinalizationListener } from '../../shared/finalization-notices.js';
import type { Logger } from '../../shared/logger.js';
import type { ApplyQueue } from '../../shared/queue.js';
import type { TransactionRow } from '../../shared/transaction-repository.js';
import {
  getLatestApplied,
  getTransaction,
  isFinal,
  reserveTransaction,
  type Reservation,
} from '../../shared/transactions.js';
import { requestVoid } from '../../shared/voids.js';
import { findWalletTransaction } from '../../shared/transaction-repository.js';
import { sendJson } from '../json-response.js';
import { preferredWaitSeconds } from '../prefer-wait.js';
import { parseRequest, requireJsonBody } from '../problem.js';
import {
  createTransactionBody,
  toLatestTransactionResponse,
  toTransactionResponse,
  transactionParams,
  voidTransactionBody,
  walletParams,
} from '../schemas.js';

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

  /** 202 with the pending transaction, or with `Prefer: wait=N` its final state if it gets there in time. */
  async function answerReservation(req: Request, res: Response, { transaction, enqueued }: Reservation) {
    const { walletId, id } = transaction;
    if (!enqueued) {
      deps.logger.warn({ walletId, transactionId: id }, 'queue unreachable; the sweeper will enqueue the wallet');
    }
    res.location(`/wallets/${walletId}/transactions/${id}`);
    const waitSeconds = preferredWaitSeconds(req.get('prefer'), deps.maxPreferWaitSeconds);
    if (waitSeconds === 0) return sendTransaction(res, 202, transaction);

    res.set('Preference-Applied', `wait=${waitSeconds}`);
    const final = await deps.finalization.waitFor(walletId, waitSeconds * 1000, async () => {
      const current = await findWalletTransaction(deps.pool, walletId, id);
      return current && isFinal(current) ? current : null;
    });
    const latest = final ?? transaction;
    sendTransaction(res, statusFor(latest), latest);
  }

  router.post('/wallets/:id/transactions', requireJsonBody, async (req, res) => {
    const { id: walletId } = parseRequest(walletParams, req.params, 'path');
    const body = parseRequest(createTransactionBody, req.body, 'body');
    await answerReservation(req, res, await reserveTransaction({ db: deps.pool, queue: deps.queue }, walletId, body));
  });

  router.post('/wallets/:id/transactions/:txId/void', requireJsonBody, async (req, res) => {
    const { id: walletId, txId } = parseRequest(transactionParams, req.params, 'path');
    const body = parseRequest(voidTransactionBody, req.body, 'body');
    const voidDeps = { db: deps.pool, queue: deps.queue, voidWindowMs: deps.voidWindowMs };
    await answerReservation(req, res, await requestVoid(voidDeps, walletId, txId, body));
  });

  // Registered before `/:txId` so that "latest" is not read as a transaction id.
  router.get('/wallets/:id/transactions/latest', async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    sendJson(res, 200, toLatestTransactionResponse(await getLatestApplied(deps.pool, id)));
  });

  router.get('/wallets/:id/transactions/:txId', async (req, res) => {
    const { id, txId } = parseRequest(transactionParams, req.params, 'path');
    sendTransaction(res, 200, await getTransaction(deps.pool, id, txId));
  });

  return router;
}
