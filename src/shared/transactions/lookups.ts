import type { CommonQueryMethods } from 'slonik';
import { NotFoundError, ValidationError } from '../domain/errors.js';
import { toPage, type CursorKey, type Page } from './pagination.js';
import {
  findLabelledTransactions,
  findLedgerLayout,
  findLegacyTransactions,
  findPendingTransactions,
  findRecentTransactions,
  findTransactionByFingerprint,
  findWalletTransactions,
  type ListedTransaction,
  type ReservationPosition,
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
  const rows = await findWalletTransactions(db, walletId, {
    status: page.status,
    labels: page.labels,
    beforeSeq: numericCursor(page.after),
    limit: page.limit + 1,
  });
  return toPage(rows, page.limit, (row) => row.seq);
}

/**
 * Transactions of all wallets, newest first: by their time-ordered ids, then those reserved before
 * ids were time-ordered (migration 005) by seq, so a cursor is an id or, in the older part, a seq.
 * Pending ones (`status=pending`) are read through the pending markers, by seq; a label search
 * through the outbox rows of the reservations, by their position.
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
  if (Object.keys(page.labels).length > 0) {
    const rows = await findLabelledTransactions(db, {
      status: page.status,
      labels: page.labels,
      before: positionCursor(page.after),
      limit,
    });
    return toPage(rows, page.limit, (row) => row.position);
  }
  const layout = await findLedgerLayout(db);
  const filter = { status: page.status, labels: page.labels };
  if (typeof page.after === 'string' && !UUID.test(page.after)) throw notOurCursor();
  const recent =
    typeof page.after === 'number'
      ? []
      : await findRecentTransactions(db, layout, { ...filter, beforeId: page.after, limit });
  const legacy =
    recent.length < limit && layout.legacyMaxSeq > 0
      ? await findLegacyTransactions(db, layout, {
          ...filter,
          beforeSeq: typeof page.after === 'number' ? page.after : null,
          limit: limit - recent.length,
        })
      : [];
  const legacyIds = new Set(legacy.map((row) => row.id));
  return toPage([...recent, ...legacy], page.limit, (row) => (legacyIds.has(row.id) ? row.seq : row.id));
}

const UUID = /^[0-9a-f]{8}-/;

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

/** The label search's cursors name an outbox position, `xid.row.ordinal`. */
function positionCursor(after: CursorKey | null): ReservationPosition | null {
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
