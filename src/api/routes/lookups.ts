import { Router } from 'express';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import {
  getTransactionByFingerprint,
  getWalletByExternalId,
  listWalletTransactions,
  searchTransactions,
  searchWallets,
} from '../../shared/lookups.js';
import type { Page } from '../../shared/pagination.js';
import { externalIdSchema, fingerprintSchema } from '../../shared/validation.js';
import { sendJson } from '../json-response.js';
import { parseListQuery, transactionListQuery, walletListQuery } from '../list-query.js';
import { parseRequest } from '../problem.js';
import { toTransactionResponse, toWalletResponse, walletParams } from '../schemas.js';

function pageResponse<T, R>(page: Page<T>, toResponse: (item: T) => R) {
  return { items: page.items.map(toResponse), nextCursor: page.nextCursor };
}

/** Lookups by the client's own keys, listings and label searches. Registered before the wallet routes. */
export function lookupRoutes(deps: { pool: DatabasePool }): Router {
  const router = Router();

  router.get('/wallets/by-external-id/:externalId', async (req, res) => {
    const { externalId } = parseRequest(z.object({ externalId: externalIdSchema }), req.params, 'path');
    sendJson(res, 200, toWalletResponse(await getWalletByExternalId(deps.pool, externalId)));
  });

  router.get('/transactions/by-fingerprint/:fingerprint', async (req, res) => {
    const { fingerprint } = parseRequest(z.object({ fingerprint: fingerprintSchema }), req.params, 'path');
    sendJson(res, 200, toTransactionResponse(await getTransactionByFingerprint(deps.pool, fingerprint)));
  });

  router.get('/wallets', async (req, res) => {
    const page = parseListQuery(walletListQuery, req.query);
    sendJson(res, 200, pageResponse(await searchWallets(deps.pool, page), toWalletResponse));
  });

  router.get('/transactions', async (req, res) => {
    const page = parseListQuery(transactionListQuery, req.query);
    sendJson(res, 200, pageResponse(await searchTransactions(deps.pool, page), toTransactionResponse));
  });

  router.get('/wallets/:id/transactions', async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    const page = parseListQuery(transactionListQuery, req.query);
    sendJson(res, 200, pageResponse(await listWalletTransactions(deps.pool, id, page), toTransactionResponse));
  });

  return router;
}
