/** wallets: creating and reading wallets (wallets.ts) over the wallets table (wallet-repository.ts). */
import type { CommonQueryMethods } from 'slonik';
import { ConflictError, NotFoundError } from '../domain/errors.js';
import {
  findWalletBalance,
  findWalletByExternalId,
  findWalletById,
  insertWallet,
  type NewWallet,
  type WalletRow,
} from './wallet-repository.js';

/** The externalId names a wallet that exists: the client's earlier create (or someone else's). */
export class DuplicateExternalIdError extends ConflictError {
  constructor(readonly existing: WalletRow) {
    super(`a wallet with this externalId exists: wallet ${existing.id}`);
  }
}

export async function createWallet(db: CommonQueryMethods, wallet: NewWallet): Promise<WalletRow> {
  const created = await insertWallet(db, wallet);
  if (created) return created;
  const existing = await findWalletByExternalId(db, wallet.externalId);
  // Null only if the wallet vanished after the conflict; wallets are never deleted, so it cannot.
  if (!existing) throw new Error(`wallet with externalId ${wallet.externalId} conflicted but is missing`);
  throw new DuplicateExternalIdError(existing);
}

export async function getWallet(db: CommonQueryMethods, id: number): Promise<WalletRow> {
  const wallet = await findWalletById(db, id);
  if (!wallet) throw new NotFoundError(`wallet ${id} does not exist`);
  return wallet;
}

export async function getBalance(db: CommonQueryMethods, id: number): Promise<string> {
  const balance = await findWalletBalance(db, id);
  if (balance === null) throw new NotFoundError(`wallet ${id} does not exist`);
  return balance;
}
