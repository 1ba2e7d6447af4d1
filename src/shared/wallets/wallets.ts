/** wallets: creating and reading wallets (wallets.ts) over the wallets table (wallet-repository.ts). */
import type { CommonQueryMethods } from 'slonik';
import { ConflictError, NotFoundError } from '../domain/errors.js';
import type { Currency } from '../ledger/currency.js';
import {
  findWalletBalance,
  findWalletByExternalId,
  findWalletById,
  findWalletCurrencies,
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

/**
 * Wallet currencies, read once per wallet and kept: a wallet's currency never changes and wallets
 * are never deleted, so an entry can never be stale. Only existing wallets are kept (an unknown id
 * is asked again), at most `capacity` of them (the oldest read goes first).
 */
export class WalletCurrencies {
  private readonly known = new Map<number, Currency>();

  constructor(
    private readonly db: CommonQueryMethods,
    private readonly capacity = 100_000,
  ) {}

  /** The currency of each of `ids` that exists. */
  async of(ids: readonly number[]): Promise<ReadonlyMap<number, Currency>> {
    const missing = [...new Set(ids.filter((id) => !this.known.has(id)))];
    if (missing.length > 0) {
      for (const [id, currency] of await findWalletCurrencies(this.db, missing)) {
        if (this.known.size >= this.capacity) this.known.delete(this.known.keys().next().value!);
        this.known.set(id, currency);
      }
    }
    return new Map(ids.flatMap((id) => (this.known.has(id) ? [[id, this.known.get(id)!] as const] : [])));
  }
}
