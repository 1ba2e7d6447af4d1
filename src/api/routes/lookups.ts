import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { Router, type RequestHandler } from 'express';
import type { DatabasePool } from 'slonik';
import {
  getTransactionByFingerprint,
  getWalletByExternalId,
  listWalletTransactions,
  searchTransactions,
  searchWallets,
} from '../../shared/transactions/lookups.js';
import type { Page } from '../../shared/transactions/pagination.js';
import { externalIdSchema, fingerprintSchema } from '../../shared/domain/validation.js';
import { sendJson } from '../json-response.js';
import { parseListQuery, transactionListQuery, walletListQuery } from '../list-query.js';
import { z } from '../openapi-zod.js';
import { defineOperation, problemContent, registerOperations, route } from '../operation.js';
import { parseRequest } from '../problem.js';
import {
  toTransactionResponse,
  toWalletResponse,
  transactionPageResponse,
  transactionResponse,
  validationProblemResponse,
  walletPageResponse,
  walletParams,
  walletResponse,
} from '../schemas.js';

const externalIdParams = z.object({
  externalId: externalIdSchema.openapi({ param: { description: "The wallet's externalId." }, example: 'userid-123' }),
});
const fingerprintParams = z.object({
  fingerprint: fingerprintSchema.openapi({
    param: { description: 'The fingerprint it was posted with.' },
    example: 'TX123A001',
  }),
});
const badRequest = {
  description: 'An invalid path or query parameter (unknown ones included).',
  content: problemContent(validationProblemResponse),
};
/** When `/wallets/by-external-id/{externalId}` was deprecated (2026-12-01), as RFC 9745 writes it. */
const DEPRECATED_SINCE = '@1796083200';
/** Paths still answered but left out of the OpenAPI document: each is deprecated, with a successor. */
export const UNDOCUMENTED_DEPRECATED_PATHS = ['/wallets/by-external-id/:externalId'] as const;

const json = (schema: z.ZodTypeAny) => ({ 'application/json': { schema } });

export const lookupOperations = {
  getWalletByExternalId: defineOperation({
    operationId: 'getWalletByExternalId',
    method: 'get',
    // Not under /wallets/: `/wallets/by-external-id/{externalId}` and `/wallets/{id}/balance` would
    // both match `/wallets/by-external-id/balance`, an ambiguity generated routers and clients dislike.
    path: '/wallets-by-external-id/:externalId',
    scope: 'wallets:read',
    tags: ['wallets'],
    summary: 'Find a wallet by its externalId',
    request: { params: externalIdParams },
    responses: {
      200: { description: 'The wallet.', content: json(walletResponse) },
      400: badRequest,
      404: { description: 'No wallet has this externalId.', content: problemContent() },
    },
  }),
  getTransactionByFingerprint: defineOperation({
    operationId: 'getTransactionByFingerprint',
    method: 'get',
    path: '/transactions/by-fingerprint/:fingerprint',
    scope: 'wallets:read',
    tags: ['transactions'],
    summary: 'Find a transaction by its fingerprint (any status)',
    request: { params: fingerprintParams },
    responses: {
      200: { description: 'The transaction.', content: json(transactionResponse) },
      400: badRequest,
      404: { description: 'No transaction has this fingerprint.', content: problemContent() },
    },
  }),
  listWallets: defineOperation({
    operationId: 'listWallets',
    method: 'get',
    path: '/wallets',
    scope: 'wallets:read',
    tags: ['wallets'],
    summary: 'Wallets having all the given labels, newest first',
    request: { query: walletListQuery },
    responses: { 200: { description: 'A page of wallets.', content: json(walletPageResponse) }, 400: badRequest },
  }),
  listTransactions: defineOperation({
    operationId: 'listTransactions',
    method: 'get',
    path: '/transactions',
    scope: 'wallets:read',
    tags: ['transactions'],
    summary: 'Transactions of all wallets having all the given labels, newest first',
    request: { query: transactionListQuery },
    responses: {
      200: { description: 'A page of transactions.', content: json(transactionPageResponse) },
      400: badRequest,
    },
  }),
  listWalletTransactions: defineOperation({
    operationId: 'listWalletTransactions',
    method: 'get',
    path: '/wallets/:id/transactions',
    scope: 'wallets:read',
    tags: ['transactions'],
    summary: "A wallet's transactions, newest first",
    request: { params: walletParams, query: transactionListQuery },
    responses: {
      200: { description: 'A page of transactions.', content: json(transactionPageResponse) },
      400: badRequest,
      404: { description: 'No such wallet.', content: problemContent() },
    },
  }),
};

export function registerLookupPaths(registry: OpenAPIRegistry): void {
  registerOperations(registry, lookupOperations);
}

function pageResponse<T, R>(page: Page<T>, toResponse: (item: T) => R) {
  return { items: page.items.map(toResponse), nextCursor: page.nextCursor };
}

/**
 * Lookups by the client's own keys, listings and label searches. Listings, searches and the
 * wallet lookup by externalId read `readPool` (a replica, when DATABASE_READ_URL is set: they may
 * lag); the transaction lookup by fingerprint reads the primary, because a client that retries a
 * post asks it to learn whether its own write landed.
 */
export function lookupRoutes(deps: { pool: DatabasePool; readPool: DatabasePool }): Router {
  const router = Router();

  const sendWalletByExternalId: RequestHandler = async (req, res) => {
    const { externalId } = parseRequest(externalIdParams, req.params, 'path');
    sendJson(res, 200, toWalletResponse(await getWalletByExternalId(deps.readPool, externalId)));
  };
  route(router, lookupOperations.getWalletByExternalId, sendWalletByExternalId);
  // The path clients used before it moved: still answered, marked deprecated (RFC 9745) with its
  // successor, and left out of the OpenAPI document (it is the ambiguous one).
  route(
    router,
    { ...lookupOperations.getWalletByExternalId, path: UNDOCUMENTED_DEPRECATED_PATHS[0] },
    (req, res, next) => {
      res.set('Deprecation', DEPRECATED_SINCE);
      const successor = req.path.replace('/wallets/by-external-id/', '/wallets-by-external-id/');
      res.set('Link', `<${successor}>; rel="successor-version"`);
      next();
    },
    sendWalletByExternalId,
  );

  route(router, lookupOperations.getTransactionByFingerprint, async (req, res) => {
    const { fingerprint } = parseRequest(fingerprintParams, req.params, 'path');
    sendJson(res, 200, toTransactionResponse(await getTransactionByFingerprint(deps.pool, fingerprint)));
  });

  route(router, lookupOperations.listWallets, async (req, res) => {
    const page = parseListQuery(walletListQuery, req.query);
    sendJson(res, 200, pageResponse(await searchWallets(deps.readPool, page), toWalletResponse));
  });

  route(router, lookupOperations.listTransactions, async (req, res) => {
    const page = parseListQuery(transactionListQuery, req.query);
    // Pending ones are found through the unlogged markers, which a replica cannot read.
    const db = page.status === 'pending' ? deps.pool : deps.readPool;
    sendJson(res, 200, pageResponse(await searchTransactions(db, page), toTransactionResponse));
  });

  route(router, lookupOperations.listWalletTransactions, async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    const page = parseListQuery(transactionListQuery, req.query);
    sendJson(res, 200, pageResponse(await listWalletTransactions(deps.readPool, id, page), toTransactionResponse));
  });

  return router;
}
