import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { Router, type Response } from 'express';
import type { DatabasePool } from 'slonik';
import type { FinalizationListener } from '../../shared/apply/finalization-notices.js';
import type { Logger } from '../../shared/infra/logger.js';
import type { ApplyQueue } from '../../shared/infra/queue.js';
import { findTransferById, type TransferRow } from '../../shared/transfers/transfer-repository.js';
import {
  getTransfer,
  getTransferByFingerprint,
  isTransferFinal,
  listWalletTransfers,
  requestTransferVoid,
  TransferReserver,
} from '../../shared/transfers/transfers.js';
import { findWalletTransaction } from '../../shared/transactions/transaction-repository.js';
import { WalletCurrencies } from '../../shared/wallets/wallets.js';
import { sendJson } from '../json-response.js';
import { z } from '../openapi-zod.js';
import { defineOperation, problemContent, registerOperations, route } from '../operation.js';
import { preferredWaitSeconds } from '../prefer-wait.js';
import { parseRequest, requireJsonBody } from '../problem.js';
import {
  createTransferBody,
  duplicateTransferFingerprintProblemResponse,
  fingerprintReusedProblemResponse,
  toTransferResponse,
  transferFingerprintParams,
  transferListQuery,
  transferPageResponse,
  transferParams,
  transferProblemResponse,
  transferResponse,
  transactionResponse,
  toTransactionResponse,
  validationProblemResponse,
  voidTransferBody,
  walletParams,
} from '../schemas.js';

const transferJson = { 'application/json': { schema: transferResponse } };
const location = z.object({
  Location: z.string().openapi({ example: '/transfers/a3e863bf-14de-494a-bd39-d2bd5ac1ed2d' }),
});
const reversalJson = { 'application/json': { schema: transactionResponse } };
const badRequest = {
  description: 'An invalid path, query or body.',
  content: problemContent(validationProblemResponse),
};

export const transferOperations = {
  postTransfer: defineOperation({
    operationId: 'postTransfer',
    method: 'post',
    path: '/transfers',
    scope: 'transactions:write',
    tags: ['transfers'],
    summary: 'Move money from one wallet to another of the same currency',
    description:
      "Reserves the transfer and its debit leg and answers 202. A worker applies the debit through the source wallet's queue (an overdraft rejects the transfer); the same database transaction reserves the credit leg, which the destination's queue then applies.",
    request: {
      headers: z.object({
        prefer: z.string().optional().openapi({ description: 'RFC 7240 `wait=N`.', example: 'wait=5' }),
      }),
      body: { required: true, content: { 'application/json': { schema: createTransferBody } } },
    },
    responses: {
      201: { description: 'With `Prefer: wait`: completed in time.', headers: location, content: transferJson },
      202: {
        description: 'Accepted: pending (or still pending after the wait).',
        headers: location,
        content: transferJson,
      },
      400: {
        description:
          'Invalid body: same wallet on both sides, a non-positive amount, more fractional digits than the currency has, a missing fingerprint, unknown fields.',
        content: problemContent(validationProblemResponse),
      },
      404: { description: 'A wallet does not exist; nothing was reserved.', content: problemContent() },
      409: {
        description:
          'The fingerprint is used: a replay of the same request gets `/problems/duplicate-fingerprint` with its transfer; any other `/problems/fingerprint-reused`.',
        headers: location,
        content: problemContent(
          z.union([duplicateTransferFingerprintProblemResponse, fingerprintReusedProblemResponse]),
        ),
      },
      422: {
        description:
          'With `Prefer: wait`: rejected in time (the transfer, with `reason`); or `/problems/currency-mismatch`: the wallets hold different currencies (nothing reserved).',
        headers: location,
        content: { ...transferJson, ...problemContent() },
      },
    },
  }),
  getTransfer: defineOperation({
    operationId: 'getTransfer',
    method: 'get',
    path: '/transfers/:transferId',
    scope: 'wallets:read',
    tags: ['transfers'],
    summary: 'Read a transfer (poll its status)',
    request: { params: transferParams },
    responses: {
      200: { description: 'The transfer.', content: transferJson },
      400: badRequest,
      404: { description: 'No such transfer.', content: problemContent() },
    },
  }),
  getTransferByFingerprint: defineOperation({
    operationId: 'getTransferByFingerprint',
    method: 'get',
    path: '/transfers/by-fingerprint/:fingerprint',
    scope: 'wallets:read',
    tags: ['transfers'],
    summary: 'Find a transfer by its fingerprint',
    request: { params: transferFingerprintParams },
    responses: {
      200: { description: 'The transfer.', content: transferJson },
      400: badRequest,
      404: { description: 'No transfer has this fingerprint.', content: problemContent() },
    },
  }),
  voidTransfer: defineOperation({
    operationId: 'voidTransfer',
    method: 'post',
    // Not `/transfers/{transferId}/void`: with `/transfers/by-fingerprint/{fingerprint}` that is an
    // ambiguous pair of paths (`/transfers/by-fingerprint/void`), which generated clients dislike.
    path: '/transfer-voids',
    scope: 'transactions:write',
    tags: ['transfers'],
    summary: 'Void a completed transfer: reverse its credit leg, then its debit leg',
    description:
      'Reserves the reversal of the credit leg (a withdrawal of `to`, applied in its order with the overdraft rule) and answers 202 with it; once it is applied, the same database transaction reserves the reversal of the debit leg (money back to `from`) and the transfer is `voiding`, then `voided`. A reversal that would overdraw `to` ends rejected (422 with `Prefer: wait`) and the transfer stays completed.',
    request: {
      headers: z.object({
        prefer: z.string().optional().openapi({ description: 'RFC 7240 `wait=N`.', example: 'wait=5' }),
      }),
      body: { required: true, content: { 'application/json': { schema: voidTransferBody } } },
    },
    responses: {
      201: { description: 'With `Prefer: wait`: the credit reversal applied in time.', content: reversalJson },
      202: { description: 'Accepted: the credit reversal, pending.', content: reversalJson },
      400: badRequest,
      404: { description: 'No such transfer; nothing was reserved.', content: problemContent() },
      409: {
        description:
          '`/problems/transfer-not-voidable` (pending or rejected) or `/problems/transfer-void-exists` (voiding or voided, or a void pending); the body holds the transfer.',
        content: problemContent(transferProblemResponse),
      },
      422: { description: 'With `Prefer: wait`: the credit reversal was rejected in time.', content: reversalJson },
    },
  }),
  listWalletTransfers: defineOperation({
    operationId: 'listWalletTransfers',
    method: 'get',
    path: '/wallets/:id/transfers',
    scope: 'wallets:read',
    tags: ['transfers'],
    summary: "A wallet's transfers (either side), newest first",
    request: { params: walletParams, query: transferListQuery },
    responses: {
      200: { description: 'A page of transfers.', content: { 'application/json': { schema: transferPageResponse } } },
      400: badRequest,
      404: { description: 'No such wallet.', content: problemContent() },
    },
  }),
};

export function registerTransferPaths(registry: OpenAPIRegistry): void {
  registerOperations(registry, transferOperations);
}

export interface TransferRouteDeps {
  logger: Logger;
  pool: DatabasePool;
  queue: ApplyQueue;
  finalization: FinalizationListener;
  maxPreferWaitSeconds: number;
}

function sendTransfer(res: Response, status: number, transfer: TransferRow): void {
  sendJson(res, status, toTransferResponse(transfer));
}

export function transferRoutes(deps: TransferRouteDeps): Router {
  const router = Router();
  const currencies = new WalletCurrencies(deps.pool);
  const reserver = new TransferReserver({ db: deps.pool, queue: deps.queue, currencies });

  /**
   * Waits for the outcome: first for the source wallet's news (the debit decided), then, once the
   * credit leg exists, for the destination's. Each wait also re-reads at least once a second.
   */
  async function waitForOutcome(transfer: TransferRow, waitMs: number): Promise<TransferRow | null> {
    const deadline = Date.now() + waitMs;
    const read = () => findTransferById(deps.pool, transfer.id);
    const debited = await deps.finalization.waitFor(transfer.from, waitMs, async () => {
      const current = await read();
      return current && (isTransferFinal(current) || current.creditId !== null) ? current : null;
    });
    if (!debited || isTransferFinal(debited)) return debited;
    return deps.finalization.waitFor(transfer.to, Math.max(0, deadline - Date.now()), async () => {
      const current = await read();
      return current && isTransferFinal(current) ? current : null;
    });
  }

  route(router, transferOperations.postTransfer, requireJsonBody, async (req, res) => {
    const body = parseRequest(createTransferBody, req.body, 'body');
    const { transfer, enqueued } = await reserver.reserve(body);
    if (!enqueued) {
      (res.locals.log ?? deps.logger).warn(
        { walletId: transfer.from, transferId: transfer.id },
        'queue unreachable; the sweeper will enqueue the wallet',
      );
    }
    res.location(`/transfers/${transfer.id}`);
    const waitSeconds = preferredWaitSeconds(req.get('prefer'), deps.maxPreferWaitSeconds);
    if (waitSeconds === 0) return sendTransfer(res, 202, transfer);
    res.set('Preference-Applied', `wait=${waitSeconds}`);
    // Accepted whatever happens while waiting: a failed re-read still answers the 202 it earned.
    const final = await waitForOutcome(transfer, waitSeconds * 1000).catch((error: unknown) => {
      deps.logger.warn({ err: error, transferId: transfer.id }, 'could not wait for the outcome; answering 202');
      return null;
    });
    const latest = final ?? transfer;
    const status = latest.status === 'completed' ? 201 : latest.status === 'rejected' ? 422 : 202;
    sendTransfer(res, status, latest);
  });

  route(router, transferOperations.voidTransfer, requireJsonBody, async (req, res) => {
    const { transferId, ...body } = parseRequest(voidTransferBody, req.body, 'body');
    const { reversal } = await requestTransferVoid({ db: deps.pool, queue: deps.queue }, transferId, body);
    res.location(`/wallets/${reversal.walletId}/transactions/${reversal.id}`);
    const waitSeconds = preferredWaitSeconds(req.get('prefer'), deps.maxPreferWaitSeconds);
    let latest = reversal;
    if (waitSeconds > 0) {
      res.set('Preference-Applied', `wait=${waitSeconds}`);
      const final = await deps.finalization
        .waitFor(reversal.walletId, waitSeconds * 1000, async () => {
          const current = await findWalletTransaction(deps.pool, reversal.walletId, reversal.id);
          return current && current.status !== 'pending' ? current : null;
        })
        .catch(() => null);
      latest = final ?? reversal;
    }
    const status = latest.status === 'applied' ? 201 : latest.status === 'rejected' ? 422 : 202;
    sendJson(res, status, toTransactionResponse(latest));
  });

  // Registered before `/:transferId`.
  route(router, transferOperations.getTransferByFingerprint, async (req, res) => {
    const { fingerprint } = parseRequest(transferFingerprintParams, req.params, 'path');
    sendTransfer(res, 200, await getTransferByFingerprint(deps.pool, fingerprint));
  });

  route(router, transferOperations.getTransfer, async (req, res) => {
    const { transferId } = parseRequest(transferParams, req.params, 'path');
    sendTransfer(res, 200, await getTransfer(deps.pool, transferId));
  });

  route(router, transferOperations.listWalletTransfers, async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    const query = parseRequest(transferListQuery, req.query, 'query');
    const page = await listWalletTransfers(deps.pool, currencies, id, {
      cursor: query.cursor ?? null,
      limit: query.limit,
    });
    sendJson(res, 200, { items: page.items.map(toTransferResponse), nextCursor: page.nextCursor });
  });

  return router;
}
