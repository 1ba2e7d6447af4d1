import type { CommonQueryMethods } from 'slonik';
import { NotFoundError } from '../domain/errors.js';
import { toPage, type Page } from './pagination.js';
import {
  findTransactionByFingerprint,
  findTransactions,
  type ListedTransaction,
  type TransactionRow,
  type TransactionStatus,
} from './transaction-repository.js';
import { findWalletByExternalId, findWalletsByLabels, type WalletRow } from '../wallets/wallet-repository.js';
import { getWallet } from '../wallets/wallets.js';

export interface PageRequest {
  labels: Record<string, string>;
  /** The sort key the client's cursor names, or null for the first page. */
  after: number | null;
  limit: number;
}

export async function getWalletByExternalId(db: CommonQueryMethods, externalId: string): Promise<WalletRow> {
  const wallet = await findWalletByExternalId(db, externalId);
  if (!wallet) throw new NotFoundError(`no wallet has externalId ${JSON.stringify(externalId)}`);
  return wallet;
}

export async function getTransactionByFingerprint(
  db: CommonQueryMethods,
  fingerprint: string,
): Promise<TransactionRow> {
  const transaction = await findTransactionByFingerprint(db, fingerprint);
  if (!transaction) throw new NotFoundError(`no transaction has fingerprint ${JSON.stringify(fingerprint)}`);
  return transaction;
}

/** A wallet's transactions, newest first; 404 for a wallet that does not exist. */
export async function listWalletTransactions(
  db: CommonQueryMethods,
  walletId: number,
  page: PageRequest & { status?: TransactionStatus },
): Promise<Page<ListedTransaction>> {
  await getWallet(db, walletId);
  return searchTransactions(db, page, walletId);
}

export async function searchTransactions(
  db: CommonQueryMethods,
  page: PageRequest & { status?: TransactionStatus },
  walletId?: number,
): Promise<Page<ListedTransaction>> {
  const rows = await findTransactions(db, {
    walletId,
    status: page.status,
    labels: page.labels,
    beforeSeq: page.after,
    limit: page.limit + 1,
  });
  return toPage(rows, page.limit, (row) => row.seq);
}

export async function searchWallets(db: CommonQueryMethods, page: PageRequest): Promise<Page<WalletRow>> {
  const rows = await findWalletsByLabels(db, { labels: page.labels, beforeId: page.after, limit: page.limit + 1 });
  return toPage(rows, page.limit, (row) => row.id);
}
