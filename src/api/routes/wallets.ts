import { Router } from 'express';
import type { DatabasePool } from 'slonik';
import { decimalToJsonNumber } from '../../shared/money.js';
import { createWallet, getBalance, getWallet } from '../../shared/wallets.js';
import { sendJson } from '../json-response.js';
import { parseRequest, requireJsonBody } from '../problem.js';
import { createWalletBody, toWalletResponse, walletParams } from '../schemas.js';

export function walletRoutes(deps: { pool: DatabasePool }): Router {
  const router = Router();

  router.post('/wallets', requireJsonBody, async (req, res) => {
    const body = parseRequest(createWalletBody, req.body, 'body');
    const wallet = await createWallet(deps.pool, body);
    res.location(`/wallets/${wallet.id}`);
    sendJson(res, 201, toWalletResponse(wallet));
  });

  router.get('/wallets/:id', async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    sendJson(res, 200, toWalletResponse(await getWallet(deps.pool, id)));
  });

  // A bare JSON number, as the original service answered: `35.0`.
  router.get('/wallets/:id/balance', async (req, res) => {
    const { id } = parseRequest(walletParams, req.params, 'path');
    res.type('application/json').send(decimalToJsonNumber(await getBalance(deps.pool, id)));
  });

  return router;
}
