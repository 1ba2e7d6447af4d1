/** transfers: money moved between two wallets of one currency, as a debit leg and a credit leg (docs/design.md, Transfers). */
import { randomUUID } from 'node:crypto';
import { UniqueIntegrityConstraintViolationError, type CommonQueryMethods } from 'slonik';
import { ConflictError, NotFoundError, RuleViolationError, ValidationError } from '../domain/errors.js';
import { seqBeforeCursor, seqPage } from '../domain/seq-page.js';
import { checkAmountPrecision } from '../domain/precision.js';
import { insertPendingTransaction, type TransactionRow } from '../transactions/transaction-repository.js';
import { enqueueApply, type ApplyQueue } from '../infra/queue.js';
import { unitsToDecimal, decimalToUnits, type Units } from '../ledger/money.js';
import { recordTransferRequested, recordTransferVoidRequested } from '../telemetry/metrics.js';
import { currentTraceparent, inSpan } from '../telemetry/tracing.js';
import type { WalletCurrencies } from '../wallets/wallets.js';
import { GroupCommitter, type ItemResult } from '../infra/group-commit.js';
import { RESERVATION_GROUPS } from '../transactions/transactions.js';
import {
  findTransferByFingerprint,
  findTransferById,
  findTransfersByFingerprints,
  findWalletTransfers,
  insertTransfers,
  type NewTransfer,
  type TransferRow,
} from './transfer-repository.js';

export interface TransferRequest {
  from: number;
  to: number;
  amount: Units;
  fingerprint: string;
  labels: Record<string, string>;
  description: string | null;
}

export interface TransferReservation {
  transfer: TransferRow;
  /** False when the queue could not be reached; the sweeper enqueues the source wallet later. */
  enqueued: boolean;
}

/** The transfer's fingerprint was used before by the same request: answered with the transfer it made. */
export class DuplicateTransferFingerprintError extends ConflictError {
  constructor(readonly existing: TransferRow) {
    super(`this fingerprint is already used by transfer ${existing.id} (${existing.status})`);
  }
}

/** Same request: same wallets, exact amount, label set and description. */
export function isTransferReplay(existing: TransferRow, request: TransferRequest): boolean {
  const labels = (l: Record<string, string>) => JSON.stringify(Object.entries(l).sort(([a], [b]) => (a < b ? -1 : 1)));
  return (
    existing.from === request.from &&
    existing.to === request.to &&
    decimalToUnits(existing.amount) === request.amount &&
    labels(existing.labels) === labels(request.labels) &&
    existing.description === request.description
  );
}

/**
 * The rules a transfer must pass before anything is reserved: two different wallets that exist,
 * of one currency, and a positive amount within that currency's minor units.
 */
export async function checkTransfer(currencies: WalletCurrencies, request: TransferRequest) {
  if (request.from === request.to) {
    throw new ValidationError('the request body is invalid', [
      { name: 'to', reason: 'must be another wallet than from' },
    ]);
  }
  if (request.amount <= 0n) {
    throw new ValidationError('the request body is invalid', [
      { name: 'amount', reason: 'a transfer amount must be positive (it moves money from `from` to `to`)' },
    ]);
  }
  const known = await currencies.of([request.from, request.to]);
  const from = known.get(request.from);
  const to = known.get(request.to);
  if (!from) throw new NotFoundError(`wallet ${request.from} does not exist`);
  if (!to) throw new NotFoundError(`wallet ${request.to} does not exist`);
  if (from.code !== to.code) {
    throw new RuleViolationError(
      `wallet ${request.from} holds ${from.code} and wallet ${request.to} holds ${to.code}: a transfer moves one currency`,
      'currency-mismatch',
    );
  }
  // One code can carry different minor units (wallets from before currencies keep 2 digits), and
  // the credit leg is never checked again: the amount must fit both wallets.
  checkAmountPrecision(request.amount, from);
  checkAmountPrecision(request.amount, to);
  return from;
}

/**
 * Reserves transfers with their debit legs, in groups as transactions are (one statement, one
 * commit and one outbox row per group), then nudges each source wallet's queue (through the
 * per-wallet enqueue, like every transaction). The worker applies the debit with the overdraft
 * rule; the statement that applies it reserves the credit leg and the worker enqueues the
 * destination. Each request is traced as `wallet.transfer`.
 */
export class TransferReserver {
  private readonly groups: GroupCommitter<NewTransfer, TransferRow>;

  constructor(private readonly deps: { db: CommonQueryMethods; queue: ApplyQueue; currencies: WalletCurrencies }) {
    this.groups = new GroupCommitter((group) => this.reserveGroup(group), RESERVATION_GROUPS);
  }

  reserve(request: TransferRequest): Promise<TransferReservation> {
    const attributes = { 'wallet.transfer.from': request.from, 'wallet.transfer.to': request.to };
    return inSpan('wallet.transfer', { attributes }, async (span) => {
      const currency = await checkTransfer(this.deps.currencies, request);
      const reserved = await this.groups.submit({
        fingerprint: request.fingerprint,
        from: request.from,
        to: request.to,
        amount: unitsToDecimal(request.amount),
        currency: currency.code,
        labels: request.labels,
        description: request.description,
        traceContext: currentTraceparent(),
      });
      span.setAttribute('wallet.transfer.id', reserved.id);
      recordTransferRequested();
      const enqueued = await enqueueApply(this.deps.queue, request.from).then(
        () => true,
        () => false,
      );
      return { transfer: reserved, enqueued };
    });
  }

  private async reserveGroup(group: readonly NewTransfer[]): Promise<ItemResult<TransferRow>[]> {
    const reserved = await insertTransfers(this.deps.db, group);
    const byPosition = new Map(reserved.map(({ ordinal, ...row }) => [ordinal, row]));
    const refused = group.filter((_, index) => !byPosition.has(index));
    // Committed: from here on a failure must not fail the group (its reserved requests would be
    // retried alone and meet their own fingerprints). Only the refused ones wait for the lookup.
    let holders = new Map<string, TransferRow>();
    let lookupFailure: unknown = null;
    if (refused.length > 0) {
      try {
        const rows = await findTransfersByFingerprints(
          this.deps.db,
          refused.map((transfer) => transfer.fingerprint),
        );
        holders = new Map(rows.map((row) => [row.fingerprint, row]));
      } catch (error) {
        lookupFailure = error;
      }
    }
    return group.map((transfer, index): ItemResult<TransferRow> => {
      const row = byPosition.get(index);
      if (row) return { ok: true, value: row };
      if (lookupFailure !== null) return { ok: false, error: lookupFailure };
      const existing = holders.get(transfer.fingerprint);
      // Transfers are never deleted: a taken fingerprint has its transfer.
      if (!existing)
        return {
          ok: false,
          error: new Error(`transfer fingerprint ${transfer.fingerprint} conflicted but is missing`),
        };
      return {
        ok: false,
        error: isTransferReplay(existing, transferRequestOf(transfer))
          ? new DuplicateTransferFingerprintError(existing)
          : new TransferFingerprintReusedError(),
      };
    });
  }
}

/** The request a reservation row was made from, to judge a replay by. */
function transferRequestOf(transfer: NewTransfer): TransferRequest {
  return {
    from: transfer.from,
    to: transfer.to,
    amount: decimalToUnits(transfer.amount)!,
    fingerprint: transfer.fingerprint,
    labels: transfer.labels,
    description: transfer.description,
  };
}

/** A transfer's fingerprint taken by a different request: nothing about it is disclosed. */
export class TransferFingerprintReusedError extends ConflictError {
  constructor() {
    super('this fingerprint is already used by a different transfer; choose another fingerprint');
  }
}

export function isTransferFinal(transfer: TransferRow): boolean {
  return transfer.status !== 'pending';
}

export async function getTransfer(db: CommonQueryMethods, id: string): Promise<TransferRow> {
  const transfer = await findTransferById(db, id);
  if (!transfer) throw new NotFoundError(`transfer ${id} does not exist`);
  return transfer;
}

export async function getTransferByFingerprint(db: CommonQueryMethods, fingerprint: string): Promise<TransferRow> {
  const transfer = await findTransferByFingerprint(db, fingerprint);
  if (!transfer) throw new NotFoundError(`no transfer has fingerprint ${fingerprint}`);
  return transfer;
}

/** A page of a wallet's transfers (either side), newest first; the cursor is the last one's seq. */
export async function listWalletTransfers(
  db: CommonQueryMethods,
  currencies: WalletCurrencies,
  walletId: number,
  page: { cursor: string | null; limit: number },
): Promise<{ items: readonly TransferRow[]; nextCursor: string | null }> {
  if (!(await currencies.of([walletId])).has(walletId)) throw new NotFoundError(`wallet ${walletId} does not exist`);
  const beforeSeq = seqBeforeCursor(page.cursor);
  return seqPage(await findWalletTransfers(db, walletId, { beforeSeq, limit: page.limit + 1 }), page.limit);
}

/** The transfer is not completed (pending, rejected, or voided or being voided already). */
export class TransferNotVoidableError extends ConflictError {
  constructor(readonly transfer: TransferRow) {
    super(`transfer ${transfer.id} cannot be voided: it is ${transfer.status}`);
  }
}

/** The transfer's credit leg already has a live (pending or applied) reversal. */
export class TransferVoidExistsError extends ConflictError {
  constructor(readonly transfer: TransferRow) {
    super(`transfer ${transfer.id} already has a void under way or done`);
  }
}

/**
 * Voids a completed transfer, credit leg first: reserves the reversal of the credit (a withdrawal
 * of `to`, applied through its queue with the overdraft rule, so the destination cannot overdraw:
 * if it would, the reversal is rejected and the transfer stays completed). The statement that
 * applies that reversal reserves the reversal of the debit (money back to `from`). Answers the
 * credit's reversal, a transaction of `to`.
 */
export async function requestTransferVoid(
  deps: { db: CommonQueryMethods; queue: ApplyQueue },
  transferId: string,
  request: { reason?: string },
): Promise<{ transfer: TransferRow; reversal: TransactionRow; enqueued: boolean }> {
  const transfer = await getTransfer(deps.db, transferId);
  if (transfer.status === 'voiding' || transfer.status === 'voided') throw new TransferVoidExistsError(transfer);
  if (transfer.status !== 'completed' || transfer.creditId === null) throw new TransferNotVoidableError(transfer);
  const reversal = await insertPendingTransaction(deps.db, {
    walletId: transfer.to,
    amount: unitsToDecimal(-decimalToUnits(transfer.amount)!),
    // One per attempt: a void whose reversal was rejected may be asked again.
    // (The `transfer:` namespace of validation.ts, which plain transactions may not use.)
    fingerprint: `transfer:${transfer.id}:void-credit:${randomUUID()}`,
    labels: {},
    description: request.reason ?? null,
    voids: transfer.creditId,
    transferId: transfer.id,
    traceContext: currentTraceparent(),
  }).catch((error: unknown) => {
    // The live-void index: another void of this transfer is pending or applied.
    if (error instanceof UniqueIntegrityConstraintViolationError) throw new TransferVoidExistsError(transfer);
    throw error;
  });
  if (!reversal) throw new Error(`wallet ${transfer.to} of transfer ${transfer.id} is missing`);
  recordTransferVoidRequested();
  const enqueued = await enqueueApply(deps.queue, transfer.to).then(
    () => true,
    () => false,
  );
  return { transfer, reversal, enqueued };
}
