/** holds: two-phase reservations of a wallet's funds (docs/design.md, Holds): create, capture, release, expire. */
import { UniqueIntegrityConstraintViolationError, type CommonQueryMethods } from 'slonik';
import { FingerprintReusedError } from '../transactions/conflicts.js';
import { ConflictError, NotFoundError, ValidationError } from '../domain/errors.js';
import { seqBeforeCursor, seqPage } from '../domain/seq-page.js';
import { checkAmountPrecision } from '../domain/precision.js';
import { enqueueApply, enqueueApplyMany, type ApplyQueue } from '../infra/queue.js';
import { decimalToUnits, unitsToDecimal, type Units } from '../ledger/money.js';
import { recordHold, recordHoldsExpired } from '../telemetry/metrics.js';
import { currentTraceparent } from '../telemetry/tracing.js';
import type { WalletCurrencies } from '../wallets/wallets.js';
import {
  captureHold,
  expireHolds,
  findHold,
  findHoldByFingerprint,
  findWalletHolds,
  insertHold,
  releaseHold,
  type HoldRow,
  type HoldStatus,
} from './hold-repository.js';

export interface HoldRequest {
  walletId: number;
  amount: Units;
  fingerprint: string;
  expiresInSeconds: number | null;
  labels: Record<string, string>;
  description: string | null;
}

export interface HoldSettings {
  defaultExpirySeconds: number;
  maxExpirySeconds: number;
}

export interface HoldDeps {
  db: CommonQueryMethods;
  queue: ApplyQueue;
  currencies: WalletCurrencies;
}

/** The hold's fingerprint was used before by the same request: answered with the hold it made. */
export class DuplicateHoldFingerprintError extends ConflictError {
  constructor(readonly existing: HoldRow) {
    super(`this fingerprint is already used by hold ${existing.id} (${existing.status})`);
  }
}

/** A hold's fingerprint taken by a different request: nothing about it is disclosed. */
export class HoldFingerprintReusedError extends ConflictError {
  constructor() {
    super('this fingerprint is already used by a different hold; choose another fingerprint');
  }
}

/**
 * A capture or release of a hold that is not active: another of capture, release and expiry came
 * first (or the hold is still pending, or was rejected). The message says which.
 */
export class HoldNotActiveError extends ConflictError {
  constructor(
    readonly hold: HoldRow,
    readonly attempted: 'capture' | 'release',
  ) {
    super(
      `hold ${hold.id} cannot be ${attempted === 'capture' ? 'captured' : 'released'}: it ${describe(hold.status)}`,
    );
  }
}

function describe(status: HoldStatus): string {
  switch (status) {
    case 'pending':
      return 'is still pending (not decided yet)';
    case 'rejected':
      return 'was rejected';
    case 'active':
      return 'is active';
    default:
      return `was ${status} already`;
  }
}

const labelsKey = (labels: Record<string, string>) =>
  JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));

/** Same request: same wallet, amount, labels and description (the expiry is not compared: it is relative). */
export function isHoldReplay(existing: HoldRow, request: HoldRequest): boolean {
  return (
    existing.walletId === request.walletId &&
    decimalToUnits(existing.amount) === request.amount &&
    labelsKey(existing.labels) === labelsKey(request.labels) &&
    existing.description === request.description
  );
}

/**
 * Reserves a pending hold and nudges the wallet's queue, which decides it against the available
 * balance in order with the wallet's transactions.
 */
export async function requestHold(
  deps: HoldDeps,
  settings: HoldSettings,
  request: HoldRequest,
): Promise<{ hold: HoldRow; enqueued: boolean }> {
  if (request.amount <= 0n) {
    throw new ValidationError('the request body is invalid', [
      { name: 'amount', reason: 'a hold amount must be positive' },
    ]);
  }
  const expiresInSeconds = request.expiresInSeconds ?? settings.defaultExpirySeconds;
  if (expiresInSeconds > settings.maxExpirySeconds) {
    throw new ValidationError('the request body is invalid', [
      { name: 'expiresInSeconds', reason: `must be at most ${settings.maxExpirySeconds}` },
    ]);
  }
  const currency = (await deps.currencies.of([request.walletId])).get(request.walletId);
  if (!currency) throw new NotFoundError(`wallet ${request.walletId} does not exist`);
  checkAmountPrecision(request.amount, currency);
  const hold = await insertHold(deps.db, {
    walletId: request.walletId,
    fingerprint: request.fingerprint,
    amount: unitsToDecimal(request.amount),
    labels: request.labels,
    description: request.description,
    expiresInSeconds,
  });
  if (!hold) {
    const existing = await findHoldByFingerprint(deps.db, request.fingerprint);
    if (!existing) throw new Error(`hold fingerprint ${request.fingerprint} conflicted but is missing`);
    throw isHoldReplay(existing, request)
      ? new DuplicateHoldFingerprintError(existing)
      : new HoldFingerprintReusedError();
  }
  recordHold('requested');
  const enqueued = await enqueueApply(deps.queue, request.walletId).then(
    () => true,
    () => false,
  );
  return { hold, enqueued };
}

export async function getHold(db: CommonQueryMethods, walletId: number, id: string): Promise<HoldRow> {
  const hold = await findHold(db, walletId, id);
  if (!hold) throw new NotFoundError(`wallet ${walletId} has no hold ${id}`);
  return hold;
}

/** Expires the hold if it is active past its expiry (then enqueues its wallet). */
async function expireIfDue(deps: HoldDeps, walletId: number, id: string): Promise<void> {
  const { walletIds, expired } = await expireHolds(deps.db, { limit: 1, hold: { walletId, id } });
  recordHoldsExpired(expired, 'request');
  if (walletIds.length > 0) await enqueueApply(deps.queue, walletId).catch(() => undefined);
}

/**
 * Captures an active hold: at most its amount (all of it when left out), once; the rest is
 * released with it. The capture is an ordinary debit of the wallet (its own refno), reserved with
 * the flip and applied by the queue, which takes the hold out of `held` in the same statement.
 * A replay (the hold is captured by the same request: see isCaptureReplay) answers the hold as it
 * is: `replayed`.
 */
export async function requestCapture(
  deps: HoldDeps,
  walletId: number,
  id: string,
  request: { amount: Units | null; fingerprint: string | null },
): Promise<{ hold: HoldRow; replayed: boolean }> {
  // Bad input is refused before anything is looked up.
  if (request.amount !== null && request.amount <= 0n) {
    throw new ValidationError('the request body is invalid', [{ name: 'amount', reason: 'must be positive' }]);
  }
  const hold = await getHold(deps.db, walletId, id);
  const held = decimalToUnits(hold.amount)!;
  if (request.amount !== null) {
    if (request.amount > held) {
      throw new ValidationError('the request body is invalid', [
        { name: 'amount', reason: `must be at most the held amount, ${hold.amount}` },
      ]);
    }
    const currency = (await deps.currencies.of([walletId])).get(walletId);
    if (currency) checkAmountPrecision(request.amount, currency);
  }
  const outcome = await flipUnlessDecided(deps, walletId, id, () =>
    captureHold(deps.db, walletId, id, {
      amount: request.amount === null ? null : unitsToDecimal(request.amount),
      // The `hold:` namespace of validation.ts, which plain transactions may not use.
      fingerprint: request.fingerprint ?? `hold:${id}:capture`,
      traceContext: currentTraceparent(),
    }),
  );
  if ('flipped' in outcome) {
    recordHold('captured');
    await enqueueApply(deps.queue, walletId).catch(() => undefined);
    return { hold: outcome.flipped, replayed: false };
  }
  if (isCaptureReplay(outcome.current, request)) return { hold: outcome.current, replayed: true };
  throw new HoldNotActiveError(outcome.current, 'capture');
}

/** Enough for the one flip a hold can undergo meanwhile (pending to active) and a spare. */
const FLIP_ATTEMPTS = 4;

/**
 * Runs a capture or release (expiring the hold first if it is due) until it flips the hold or the
 * hold is no longer active. The flip sees the hold as of its statement's start: a hold the queue
 * made active just after it is read back active, and the flip is tried again rather than answered
 * with a 409 that says "active". A fingerprint in use elsewhere is fingerprint-reused.
 */
async function flipUnlessDecided(
  deps: HoldDeps,
  walletId: number,
  id: string,
  flip: () => Promise<HoldRow | null>,
): Promise<{ flipped: HoldRow } | { current: HoldRow }> {
  for (let attempt = 1; ; attempt += 1) {
    await expireIfDue(deps, walletId, id);
    const flipped = await flip().catch((error: unknown) => {
      if (error instanceof UniqueIntegrityConstraintViolationError) throw new FingerprintReusedError();
      throw error;
    });
    if (flipped) return { flipped };
    const current = await getHold(deps.db, walletId, id);
    if (current.status !== 'active' || attempt === FLIP_ATTEMPTS) return { current };
  }
}

/**
 * Whether the hold's capture answers this request: with a fingerprint, the capture made with it
 * (an amount, if given, must be the one captured: else the fingerprint was reused); without one,
 * any capture of the same amount (as before fingerprints were compared).
 */
function isCaptureReplay(current: HoldRow, request: { amount: Units | null; fingerprint: string | null }): boolean {
  if (current.status !== 'captured') return false;
  const sameAmount =
    decimalToUnits(current.capturedAmount ?? '0') === (request.amount ?? decimalToUnits(current.amount));
  if (request.fingerprint === null) return sameAmount;
  if (current.captureFingerprint !== request.fingerprint) return false;
  if (request.amount !== null && !sameAmount) throw new FingerprintReusedError();
  return true;
}

/**
 * Releases an active hold whole. A replay answers the hold as it is: with a fingerprint, only the
 * release made with it (any other release is a 409 that says so); without one, any release. A fingerprint another release
 * used is refused (fingerprint-reused) and nothing is released.
 */
export async function requestRelease(
  deps: HoldDeps,
  walletId: number,
  id: string,
  request: { fingerprint: string | null } = { fingerprint: null },
): Promise<{ hold: HoldRow; replayed: boolean }> {
  await getHold(deps.db, walletId, id);
  const outcome = await flipUnlessDecided(deps, walletId, id, () => releaseHold(deps.db, walletId, id, request));
  if ('flipped' in outcome) {
    recordHold('released');
    await enqueueApply(deps.queue, walletId).catch(() => undefined);
    return { hold: outcome.flipped, replayed: false };
  }
  const current = outcome.current;
  if (
    current.status === 'released' &&
    (request.fingerprint === null || current.releaseFingerprint === request.fingerprint)
  ) {
    return { hold: current, replayed: true };
  }
  throw new HoldNotActiveError(current, 'release');
}

/** The sweeper's part: expire due holds (each exactly once) and enqueue their wallets. */
export async function expireDueHolds(
  deps: { db: CommonQueryMethods; queue: ApplyQueue },
  limit = 1000,
): Promise<number> {
  const { walletIds, expired } = await expireHolds(deps.db, { limit });
  recordHoldsExpired(expired, 'worker');
  if (walletIds.length > 0) await enqueueApplyMany(deps.queue, walletIds);
  return expired;
}

/** A page of a wallet's holds, newest first, optionally of one status; the cursor is the last one's seq. */
export async function listWalletHolds(
  deps: { db: CommonQueryMethods; currencies: WalletCurrencies },
  walletId: number,
  page: { status: HoldStatus | null; cursor: string | null; limit: number },
): Promise<{ items: readonly HoldRow[]; nextCursor: string | null }> {
  if (!(await deps.currencies.of([walletId])).has(walletId))
    throw new NotFoundError(`wallet ${walletId} does not exist`);
  const beforeSeq = seqBeforeCursor(page.cursor);
  const { rows, resumeBefore } = await findWalletHolds(deps.db, walletId, {
    status: page.status,
    beforeSeq,
    limit: page.limit + 1,
  });
  const listed = seqPage(rows, page.limit);
  // A short page whose scan stopped at its budget goes on below where it stopped.
  return listed.nextCursor === null && resumeBefore !== null ? { ...listed, nextCursor: String(resumeBefore) } : listed;
}
