import { createHash } from 'node:crypto';
import type { OutboxEvent } from './cloud-events.js';

/**
 * What the outbox rows name, as read from the tables (outbox-repository.ts), and the events built
 * from it. Building them here keeps the JSON work off the Postgres primary. Every field comes
 * from columns that never change once written, so an event reads the same whenever it is built.
 */
/** What an outbox row can name (the CHECK of migrations 005 and 009). */
export const OUTBOX_KINDS = [
  'wallet_created',
  'transactions_reserved',
  'transactions_decided',
  'legacy',
  'journal',
  'holds_decided',
  'holds_settled',
] as const;

/** What the statement that wrote a holds_* row did to a hold: the type of the event it gets. */
export type HoldOutcome = 'active' | 'rejected' | 'captured' | 'released' | 'expired';

export interface OutboxItem {
  kind: (typeof OUTBOX_KINDS)[number];
  xid: string;
  row: number;
  /** The transaction's place in the row (1, 2, ...); null for rows that name no transactions. */
  ordinal: number | null;
  rowCreated: string;
  /** Written after migration 010: a debit leg takes two slots (see eventsOf). */
  debitSlotsPaired: boolean;
  wallet: { id: number; externalId: string; labels: Record<string, string>; created: string; currency: string } | null;
  transaction: {
    id: string;
    walletId: number;
    amount: string;
    fingerprint: string;
    labels: Record<string, string>;
    description: string | null;
    status: string;
    voids: string | null;
    created: string;
    refno: number | null;
    oldbalance: string | null;
    newbalance: string | null;
    reason: string | null;
    finalized: string | null;
    /** For a leg of a transfer: the transfer. */
    transfer: {
      id: string;
      from: number;
      to: number;
      amount: string;
      currency: string;
      fingerprint: string;
      created: string;
    } | null;
  } | null;
  /**
   * For rows of kinds holds_*: the hold, by its columns that never change once the row's statement
   * decided it (its status does: the event's type comes from `outcome`, the row's own record).
   */
  hold: {
    id: string;
    outcome: HoldOutcome;
    walletId: number;
    amount: string;
    currency: string;
    fingerprint: string;
    labels: Record<string, string>;
    description: string | null;
    expiresAt: string;
    created: string;
    /** When it was decided active or rejected (written once, with the decision). */
    decided: string;
    reason: string | null;
    seenAvailable: string | null;
    capturedAmount: string | null;
    captureTransactionId: string | null;
    releaseFingerprint: string | null;
  } | null;
  legacy: {
    id: number;
    published: boolean;
    eventId: string;
    walletId: number;
    type: string;
    subject: string | null;
    data: string;
  } | null;
}

/** Fixed-width digits, so that positions compare as text in the order of (xid, row, ordinal). */
export function positionOf(xid: string, row: number, ordinal: number): string {
  return `${xid.padStart(20, '0')}.${String(row).padStart(19, '0')}.${String(ordinal).padStart(10, '0')}`;
}

/** A stable id per event: the same event built twice has the same id (consumers deduplicate by it). */
function eventIdOf(type: string, subjectRow: string | number): string {
  const hex = createHash('md5').update(`${type}:${subjectRow}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** JSON text of an object whose `number` fields hold exact decimal or integer text. */
function json(fields: Record<string, { number: string } | string | number | null | Record<string, string>>): string {
  const parts = Object.entries(fields).map(([key, value]) => {
    const text =
      value !== null && typeof value === 'object' && 'number' in value ? String(value.number) : JSON.stringify(value);
    return `${JSON.stringify(key)}:${text}`;
  });
  return `{${parts.join(',')}}`;
}

const number = (text: string | number) => ({ number: String(text) });

/** The events of the items, in position order. */
export function eventsOf(items: readonly OutboxItem[]): OutboxEvent[] {
  const events = items.flatMap((item): OutboxEvent[] => {
    const at = (ordinal: number) => ({
      position: positionOf(item.xid, item.row, ordinal),
      xid: item.xid,
      row: item.row,
      ordinal,
      legacyId: null,
    });
    const { wallet, transaction: t, legacy } = item;
    if (item.kind === 'wallet_created' && wallet) {
      return [
        {
          ...at(0),
          eventId: eventIdOf('WalletCreated', wallet.id),
          walletId: wallet.id,
          type: 'WalletCreated',
          subject: String(wallet.id),
          data: json({
            id: number(wallet.id),
            externalId: wallet.externalId,
            labels: wallet.labels,
            currency: wallet.currency,
            created: wallet.created,
          }),
          created: wallet.created,
        },
      ];
    }
    if (item.kind === 'legacy' && legacy && !legacy.published) {
      return [
        {
          ...at(0),
          legacyId: legacy.id,
          eventId: legacy.eventId,
          walletId: legacy.walletId,
          type: legacy.type,
          subject: legacy.subject,
          data: legacy.data,
          created: item.rowCreated,
        },
      ];
    }
    if (item.hold && item.ordinal !== null) return [holdEventOf(item, item.hold, at(2 * item.ordinal))];
    if (!t || item.ordinal === null) return [];
    const tr = t.transfer;
    const isDebit = tr !== null && t.walletId === tr.from && t.amount.startsWith('-');
    if (item.kind === 'transactions_reserved') {
      // Debit legs are reserved in rows of their own, of debit legs only (insertTransfers), up to a
      // group's worth: each takes two slots, its TransferCreated at 2k - 1 right before its
      // TransactionCreated at 2k. Other rows keep one slot per transaction, and so do rows written
      // before migration 010 (their TransferCreated at k - 1: positions already published and
      // delivered under; in a row of several debits all but the first were lost).
      const createdSlot = isDebit && item.debitSlotsPaired ? 2 * item.ordinal : item.ordinal;
      const transferCreated: OutboxEvent[] =
        tr !== null && isDebit
          ? [
              {
                ...at(createdSlot - 1),
                eventId: eventIdOf('TransferCreated', tr.id),
                walletId: tr.from,
                type: 'TransferCreated',
                subject: tr.id,
                data: json({
                  id: tr.id,
                  from: number(tr.from),
                  to: number(tr.to),
                  amount: number(tr.amount),
                  currency: tr.currency,
                  fingerprint: tr.fingerprint,
                  labels: t.labels,
                  description: t.description,
                  status: 'pending',
                  debit: t.id,
                  created: tr.created,
                }),
                created: tr.created,
              },
            ]
          : [];
      return [
        ...transferCreated,
        {
          ...at(createdSlot),
          eventId: eventIdOf('TransactionCreated', t.id),
          walletId: t.walletId,
          type: 'TransactionCreated',
          subject: t.id,
          data: json({
            id: t.id,
            walletId: number(t.walletId),
            amount: number(t.amount),
            fingerprint: t.fingerprint,
            labels: t.labels,
            description: t.description,
            status: 'pending',
            voids: t.voids,
            created: t.created,
          }),
          created: t.created,
        },
      ];
    }
    if (item.kind !== 'transactions_decided' || t.finalized === null) return [];
    const decided = { walletId: t.walletId, created: t.finalized };
    // A leg is never a reversal: slot 2 * ordinal + 1 (a reversal's TransactionVoid) is free for
    // the transfer's outcome, right after its leg's own event.
    const outcomeSlot = 2 * item.ordinal + 1;
    /** An event of this decision about its transaction's transfer: the transfer's fields and `extra`. */
    const transferEvent = (
      transfer: NonNullable<typeof tr>,
      type: string,
      slot: number,
      extra: Record<string, string | null>,
      idOf: string = transfer.id,
    ): OutboxEvent => ({
      ...at(slot),
      ...decided,
      eventId: eventIdOf(type, idOf),
      type,
      subject: transfer.id,
      data: json({
        transferId: transfer.id,
        from: number(transfer.from),
        to: number(transfer.to),
        amount: number(transfer.amount),
        currency: transfer.currency,
        ...extra,
      }),
    });
    const transferOutcome = (type: 'TransferCompleted' | 'TransferRejected'): OutboxEvent[] =>
      tr === null
        ? []
        : [transferEvent(tr, type, outcomeSlot, type === 'TransferRejected' ? { reason: t.reason } : { credit: t.id })];
    if (t.status === 'rejected') {
      // A rejected reversal of a credit leg is a transfer's void refused (the transfer stays
      // completed); a rejected reversal has no TransactionVoid, so its slot is free.
      const voidRejected = tr !== null && t.voids !== null && t.walletId === tr.to;
      return [
        {
          ...at(2 * item.ordinal),
          ...decided,
          eventId: eventIdOf('TransactionRejected', t.id),
          type: 'TransactionRejected',
          subject: t.id,
          data: json({ walletId: number(t.walletId), transactionId: t.id, amount: number(t.amount), reason: t.reason }),
        },
        ...(isDebit ? transferOutcome('TransferRejected') : []),
        ...(voidRejected
          ? [transferEvent(tr, 'TransferVoidRejected', outcomeSlot, { creditReversal: t.id, reason: t.reason }, t.id)]
          : []),
      ];
    }
    const balanceChanged: OutboxEvent = {
      ...at(2 * item.ordinal),
      ...decided,
      eventId: eventIdOf('BalanceChanged', t.id),
      type: 'BalanceChanged',
      subject: t.id,
      data: json({
        walletId: number(t.walletId),
        transactionId: t.id,
        refno: number(t.refno ?? 0),
        amount: number(t.amount),
        oldbalance: number(t.oldbalance ?? '0'),
        newbalance: number(t.newbalance ?? '0'),
      }),
    };
    if (t.voids === null)
      return [balanceChanged, ...(tr !== null && !isDebit ? transferOutcome('TransferCompleted') : [])];
    // The reversal of a debit leg is the last step of a transfer's void (its credit leg was
    // reversed first): the transfer is voided. Both slots of its ordinal are taken, so its
    // TransferVoid goes after the row's other events (TRAILING_SLOTS).
    const transferVoided = tr !== null && t.walletId === tr.from;
    return [
      balanceChanged,
      {
        ...at(2 * item.ordinal + 1),
        ...decided,
        eventId: eventIdOf('TransactionVoid', t.id),
        type: 'TransactionVoid',
        subject: t.voids,
        data: json({
          walletId: number(t.walletId),
          transactionId: t.voids,
          reversalId: t.id,
          amount: number(t.amount),
        }),
      },
      ...(transferVoided
        ? [transferEvent(tr, 'TransferVoid', TRAILING_SLOTS + item.ordinal, { debitReversal: t.id })]
        : []),
    ];
  });
  // Sorted, not only grouped by item: a row's trailing events (TRAILING_SLOTS) follow its other
  // events, and the relay publishes in this order (a position at or below the last published one
  // counts as published already).
  return events.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
}

/**
 * Where events that follow every other event of their row go: slot TRAILING_SLOTS + ordinal. A
 * row's ordinary slots are 0 .. 2 * (its transactions) + 1, far below; positions stay int4.
 */
export const TRAILING_SLOTS = 2 ** 30;

const holdEventTypes = {
  active: 'HoldCreated',
  rejected: 'HoldRejected',
  captured: 'HoldCaptured',
  released: 'HoldReleased',
  expired: 'HoldExpired',
} as const satisfies Record<HoldOutcome, string>;

/** A hold's event, of the type its outbox row recorded (never its current status). */
function holdEventOf(
  item: OutboxItem,
  hold: NonNullable<OutboxItem['hold']>,
  at: Pick<OutboxEvent, 'position' | 'xid' | 'row' | 'ordinal' | 'legacyId'>,
): OutboxEvent {
  const type = holdEventTypes[hold.outcome];
  const common = {
    holdId: hold.id,
    walletId: number(hold.walletId),
    amount: number(hold.amount),
    currency: hold.currency,
  };
  const data = (() => {
    switch (hold.outcome) {
      case 'active':
        return json({
          ...common,
          fingerprint: hold.fingerprint,
          labels: hold.labels,
          description: hold.description,
          status: 'active',
          expiresAt: hold.expiresAt,
          created: hold.created,
        });
      case 'rejected':
        return json({
          ...common,
          fingerprint: hold.fingerprint,
          status: 'rejected',
          reason: hold.reason,
          available: number(hold.seenAvailable ?? '0'),
        });
      case 'captured':
        return json({
          ...common,
          capturedAmount: number(hold.capturedAmount ?? hold.amount),
          transactionId: hold.captureTransactionId,
        });
      case 'released':
        return json({ ...common, fingerprint: hold.releaseFingerprint });
      case 'expired':
        return json({ ...common, expiresAt: hold.expiresAt });
    }
  })();
  return {
    ...at,
    eventId: eventIdOf(type, hold.id),
    walletId: hold.walletId,
    type,
    subject: hold.id,
    data,
    // A decision's time is the hold's (written once with it); a flip's is its outbox row's.
    created: hold.outcome === 'active' || hold.outcome === 'rejected' ? hold.decided : item.rowCreated,
  };
}
