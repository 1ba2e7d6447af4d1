import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { Router } from 'express';
import type { DatabasePool } from 'slonik';
import { currencyOf } from '../../shared/ledger/currency.js';
import { decimalToJsonNumber } from '../../shared/ledger/money.js';
import { createWallet, getBalance, getWallet } from '../../shared/wallets/wallets.js';
import { sendJson } from '../json-response.js';
import { defineOperation, problemContent, registerOperations, route } from '../operation.js';
import { parseRequest, requireJsonBody } from '../problem.js';
import {
  balanceResponse,
  createWalletBody,
  duplicateExternalIdProblemResponse,
  toWalletResponse,
  validationProblemResponse,
  walletParams,
  walletResponse,
} from '../schemas.js';
import { z } from '../openapi-zod.js';

const location = z.object({ Location: z.string().openapi({ example: '/wallets/1' }) });
const badId = {
  description: 'The wallet id is not a positive integer.',
  content: problemContent(validationProblemResponse),
};
const noWallet = { description: 'No such wallet.', content: problemContent() };

export const walletOperations = {
  createWallet: defineOperation({
    operationId: 'createWallet',
    method: 'post',
    path: '/wallets',
    scope: 'wallets:write',
    tags: ['wallets'],
    summary: 'Create a wallet',
    request: { body: { required: true, content: { 'application/json': { schema: createWalletBody } } } },
    responses: {
      201: {
        description: 'Created.',
        headers: location,
        content: { 'application/json': { schema: walletResponse } },
      },
      400: {
        description:
          'Invalid body (an unknown `currency` included), malformed JSON, or a key repeated within an object.',
        content: problemContent(validationProblemResponse),
      },
      409: {
        description: 'The externalId is taken; the body names the existing wallet.',
        headers: location,
        content: problemContent(duplicateExternalIdProblemResponse),
      },
    },
  }),
  getWallet: defineOperation({
    operationId: 'getWallet',
    method: 'get',
    path: '/wallets/:id',
    scope: 'wallets:read',
    tags: ['wallets'],
    summary: 'Read a wallet',
    request: { params: walletParams },
    responses: {
      200: { description: 'The wallet.', content: { 'application/json': { schema: walletResponse } } },
      400: badId,
      404: noWallet,
    },
  }),
  getBalance: defineOperation({
    operationId: 'getBalance',
    method: 'get',
    path: '/wallets/:id/balance',
    scope: 'wallets:read',
    tags: ['wallets'],
    summary: "Read a wallet's balance (a bare number)",
    request: { params: walletParams },
    responses: {
      200: { description: 'The balance, e.g. `35.0`.', content: { 'application/json': { schema: balanceResponse } } },
      400: badId,
      404: noWallet,
    },
  }),
};

export function registerWalletPaths(registry: OpenAPIRegistry): void {
  registerOperations(registry, walletOperations);
}

export function walletRoutes(deps: { pool: DatabasePool; config: { DEFAULT_CURRENCY: string } }): Router {
  const defaultCurrency = currencyOf(deps.config.DEFAULT_CURRENCY);
  if (!defaultCurrency) throw new Error(`DEFAULT_CURRENCY ${deps.config.DEFAULT_CURRENCY} is not a usable currency`);
  const router = Router();

  route(router, walletOperations.createWallet, requireJsonBody, async (req, res) => {
    const body = parseRequest(createWalletBody, req.body, 'body');
    const wallet = await createWallet(deps.pool, { ...body, currency: body.currency ?? defaultCurrency });
    res.location(`/wallets/${wallet.id}`);
    sendJson(res, 201, toWalletResponse(wallet));
  });

  route(router, walletOperations.getWallet, async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    sendJson(res, 200, toWalletResponse(await getWallet(deps.pool, id)));
  });

  // A bare JSON number, as the original service answered: `35.0`.
  route(router, walletOperations.getBalance, async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    res.type('application/json').send(decimalToJsonNumber(await getBalance(deps.pool, id)));
  });

  return router;
}
