import type { CommonQueryMethods } from 'slonik';
import { NotFoundError, ValidationError } from '../domain/errors.js';
import { toPage, toScannedPage, type CursorKey, type Page } from './pagination.js';
import {
  findJournalTransactions,
  findPendingTransactions,
  findTransactionByFingerprint,
  findWalletTransactions,
  type ListedTransaction,
  type JournalPosition,
  type TransactionRow,
  type TransactionStatus,
} from './transaction-repository.js';
import { findWalletByExternalId, findWalletsByLabels, type WalletRow } from '../wallets/wallet-repository.js';
import { getWallet } from '../wallets/wallets.js';

export interface PageRequest {
  labels: Record<string, string>;
  /** The sort key the client's cursor names, or null for the first page. */
  after: CursorKey | null;
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

/** A wallet's transactions, newest reservation first; 404 for a wallet that does not exist. */
export async function listWalletTransactions(
  db: CommonQueryMethods,
  walletId: number,
  page: PageRequest & { status?: TransactionStatus },
): Promise<Page<ListedTransaction>> {
  await getWallet(db, walletId);
  const { rows, resumeBefore } = await findWalletTransactions(db, walletId, {
    status: page.status,
    labels: page.labels,
    beforeSeq: numericCursor(page.after),
    limit: page.limit + 1,
  });
  return toScannedPage(rows, page.limit, (row) => row.seq, resumeBefore);
}

/**
 * Transactions of all wallets, newest reservation first, through the journal of reservations: a
 * cursor names a place in it. Pending ones (`status=pending`) are read through the pending
 * markers instead, by seq.
 */
export async function searchTransactions(
  db: CommonQueryMethods,
  page: PageRequest & { status?: TransactionStatus },
): Promise<Page<ListedTransaction>> {
  const limit = page.limit + 1;
  if (page.status === 'pending') {
    const rows = await findPendingTransactions(db, {
      labels: page.labels,
      beforeSeq: numericCursor(page.after),
      limit,
    });
    return toPage(rows, page.limit, (row) => row.seq);
  }
  const { rows, resumeBefore } = await findJournalTransactions(db, {
    status: page.status,
    labels: page.labels,
    before: positionCursor(page.after),
    limit,
  });
  const resume = resumeBefore && `${resumeBefore.xid}.${resumeBefore.row}.${resumeBefore.ordinal}`;
  return toScannedPage(rows, page.limit, (row) => row.position, resume);
}

function notOurCursor(): ValidationError {
  return new ValidationError('the query is invalid', [
    { name: 'cursor', reason: 'is not a cursor this listing issued' },
  ]);
}

/** A listing by seq takes only the cursors it issues. */
function numericCursor(after: CursorKey | null): number | null {
  if (typeof after === 'string') throw notOurCursor();
  return after;
}

/** The journal's cursors name a position in it, `xid.row.ordinal`. */
function positionCursor(after: CursorKey | null): JournalPosition | null {
  if (after === null) return null;
  const parts = typeof after === 'string' ? /^(\d+)\.(\d+)\.(\d+)$/.exec(after) : null;
  if (!parts) throw notOurCursor();
  return { xid: parts[1]!, row: Number(parts[2]), ordinal: Number(parts[3]) };
}

export async function searchWallets(db: CommonQueryMethods, page: PageRequest): Promise<Page<WalletRow>> {
  const rows = await findWalletsByLabels(db, {
    labels: page.labels,
    beforeId: numericCursor(page.after),
    limit: page.limit + 1,
  });
  return toPage(rows, page.limit, (row) => row.id);
}
