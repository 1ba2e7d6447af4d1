/** transactions: the API's side: reserve, void, look up and page through transactions; the transactions table. */
import { UniqueIntegrityConstraintViolationError, type CommonQueryMethods } from 'slonik';
import { DuplicateFingerprintError, FingerprintReusedError } from './conflicts.js';
import { isReplayOf } from './fingerprint-reuse.js';
import { NotFoundError } from '../domain/errors.js';
import { fractionDigitsOf, unitsToDecimal, type Units } from '../ledger/money.js';
import { checkAmountPrecision } from '../domain/precision.js';
import { WalletCurrencies } from '../wallets/wallets.js';
import { GroupCommitter, type GroupCommitOptions, type ItemResult } from '../infra/group-commit.js';
import { enqueueApply, enqueueApplyMany, type ApplyQueue } from '../infra/queue.js';
import {
  findLatestAppliedTransaction,
  findTransactionsByFingerprints,
  findWalletTransaction,
  insertPendingTransactions,
  type NewTransaction,
  type TransactionRow,
} from './transaction-repository.js';
import { recordReserved } from '../telemetry/metrics.js';
import { currentTraceparent, inSpan } from '../telemetry/tracing.js';

export interface TransactionRequest {
  amount: Units;
  fingerprint: string;
  labels: Record<string, string>;
  description: string | null;
}

export interface Reservation {
  transaction: TransactionRow;
  /** False when the queue could not be reached; the sweeper enqueues the wallet later. */
  enqueued: boolean;
}

const FINGERPRINT_KEY = 'transactions_fingerprint_key';

/** How reservations are grouped (see GroupCommitter): sizes tuned on the bench, docs/benchmarks.md. */
export const RESERVATION_GROUPS = { maxSize: 64, maxDelayMs: 1, maxInFlight: 2, timeoutMs: 5_000 } as const;
/**
 * How the reserved wallets are enqueued: all that gathered while an enqueue was under way go in
 * one `addBulk`; an enqueue gives up after 2 s (Redis away) and leaves the wallet to the sweeper.
 */
export const ENQUEUE_GROUPS = { maxSize: 1024, maxDelayMs: 0, maxInFlight: 2, timeoutMs: 2_000 } as const;

interface ReservationRequest extends TransactionRequest {
  walletId: number;
  traceContext: string | null;
}

/**
 * Reserves fingerprints with pending rows, then asks a worker to apply each wallet's pending
 * transactions. Concurrent requests of one process are reserved as a group: one statement and one
 * commit for the group's rows and their events; then the wallets reserved meanwhile are enqueued
 * with one Redis round trip (a group of its own, so a slow Redis never holds up the database
 * side). The row in Postgres is the promise to the client; the job is only a nudge. If the
 * enqueue fails, or the process dies between the two, the sweeper enqueues the wallet later.
 * Each request is traced as `wallet.reserve`; its row keeps that span's context for the worker.
 */
export class TransactionReserver {
  private readonly groups: GroupCommitter<ReservationRequest, TransactionRow>;
  private readonly enqueues: GroupCommitter<number, true>;
  private readonly currencies: WalletCurrencies;

  constructor(
    private readonly deps: { db: CommonQueryMethods; queue: ApplyQueue },
    options: GroupCommitOptions = RESERVATION_GROUPS,
  ) {
    this.currencies = new WalletCurrencies(deps.db);
    this.groups = new GroupCommitter((group) => this.reserveGroup(group), options);
    this.enqueues = new GroupCommitter(async (walletIds) => {
      await enqueueApplyMany(this.deps.queue, [...new Set(walletIds)]);
      return walletIds.map(() => ({ ok: true, value: true }));
    }, ENQUEUE_GROUPS);
  }

  reserve(walletId: number, request: TransactionRequest): Promise<Reservation> {
    return inSpan('wallet.reserve', { attributes: { 'wallet.id': walletId } }, async (span) => {
      // A whole amount suits every currency; one with a fraction must suit the wallet's. An
      // unknown wallet is left to the reservation, which answers 404 as it always did.
      if (fractionDigitsOf(request.amount) > 0) {
        const currency = (await this.currencies.of([walletId])).get(walletId);
        if (currency) checkAmountPrecision(request.amount, currency);
      }
      const transaction = await this.groups.submit({ ...request, walletId, traceContext: currentTraceparent() });
      span.setAttribute('wallet.transaction.id', transaction.id);
      recordReserved();
      const enqueued = await this.enqueues.submit(walletId).catch(() => false);
      return { transaction, enqueued };
    });
  }

  private async reserveGroup(group: readonly ReservationRequest[]): Promise<ItemResult<TransactionRow>[]> {
    const rows = group.map((request) => ({ ...request, amount: unitsToDecimal(request.amount) }));
    const reserved = await insertPendingTransactions(this.deps.db, rows).catch((error: unknown) => {
      // A concurrent request took one of the fingerprints since the check: now it is committed,
      // the same statement skips it (and the request learns of it below).
      if (error instanceof UniqueIntegrityConstraintViolationError && error.constraint === FINGERPRINT_KEY) {
        return insertPendingTransactions(this.deps.db, rows);
      }
      throw error;
    });
    const rowByPosition = new Map(reserved.map(({ ordinal, ...row }) => [ordinal, row]));
    const refused = group.filter((_, index) => !rowByPosition.has(index));
    // Committed: from here on a failure must not fail the group (its reserved requests would be
    // retried alone and meet their own fingerprints). Only the refused ones wait for the lookup.
    let holders = new Map<string, TransactionRow>();
    let lookupFailure: unknown = null;
    if (refused.length > 0) {
      try {
        const rows = await findTransactionsByFingerprints(
          this.deps.db,
          refused.map((request) => request.fingerprint),
        );
        holders = new Map(rows.map((row) => [row.fingerprint, row]));
      } catch (error) {
        lookupFailure = error;
      }
    }
    return group.map((request, index): ItemResult<TransactionRow> => {
      const row = rowByPosition.get(index);
      if (row) return { ok: true, value: row };
      if (lookupFailure !== null) return { ok: false, error: lookupFailure };
      return { ok: false, error: refusal(request, holders.get(request.fingerprint)) };
    });
  }
}

/** Why a request reserved nothing: its fingerprint is taken, else its wallet does not exist. */
function refusal(request: ReservationRequest, existing: TransactionRow | undefined): Error {
  if (existing) return fingerprintConflict(existing, { ...request, amount: unitsToDecimal(request.amount) });
  return new NotFoundError(`wallet ${request.walletId} does not exist`);
}

/** Enqueues the wallet of a just-reserved transaction; a failure is left to the sweeper. */
export async function nudgeWorker(queue: ApplyQueue, reserved: TransactionRow): Promise<Reservation> {
  const enqueued = await enqueueApply(queue, reserved.walletId).then(
    () => true,
    () => false,
  );
  return { transaction: reserved, enqueued };
}

/** A taken fingerprint: a replay gets the transaction it made; any other request learns nothing. */
export function fingerprintConflict(existing: TransactionRow, request: NewTransaction) {
  return isReplayOf(existing, request) ? new DuplicateFingerprintError(existing) : new FingerprintReusedError();
}

export function isFinal(transaction: TransactionRow): boolean {
  return transaction.status !== 'pending';
}

export async function getTransaction(
  db: CommonQueryMethods,
  walletId: number,
  transactionId: string,
): Promise<TransactionRow> {
  const transaction = await findWalletTransaction(db, walletId, transactionId);
  if (!transaction) throw new NotFoundError(`wallet ${walletId} has no transaction ${transactionId}`);
  return transaction;
}

export async function getLatestApplied(db: CommonQueryMethods, walletId: number): Promise<TransactionRow> {
  const transaction = await findLatestAppliedTransaction(db, walletId);
  if (!transaction) throw new NotFoundError(`wallet ${walletId} has no applied transaction`);
  return transaction;
}
