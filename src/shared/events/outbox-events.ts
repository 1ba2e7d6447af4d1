import { createHash } from 'node:crypto';
import type { OutboxEvent } from './cloud-events.js';

/**
 * What the outbox rows name, as read from the tables (outbox-repository.ts), and the events built
 * from it. Building them here keeps the JSON work off the Postgres primary. Every field comes
 * from columns that never change once written, so an event reads the same whenever it is built.
 */
export interface OutboxItem {
  kind: 'wallet_created' | 'transactions_reserved' | 'transactions_decided' | 'legacy' | 'journal';
  xid: string;
  row: number;
  /** The transaction's place in the row (1, 2, ...); null for rows that name no transactions. */
  ordinal: number | null;
  rowCreated: string;
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

/** The events of the items, in position order (items come in row and ordinal order). */
export function eventsOf(items: readonly OutboxItem[]): OutboxEvent[] {
  return items.flatMap((item): OutboxEvent[] => {
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
    if (!t || item.ordinal === null) return [];
    if (item.kind === 'transactions_reserved') {
      return [
        {
          ...at(item.ordinal),
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
    if (t.status === 'rejected') {
      return [
        {
          ...at(2 * item.ordinal),
          ...decided,
          eventId: eventIdOf('TransactionRejected', t.id),
          type: 'TransactionRejected',
          subject: t.id,
          data: json({ walletId: number(t.walletId), transactionId: t.id, amount: number(t.amount), reason: t.reason }),
        },
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
    if (t.voids === null) return [balanceChanged];
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
    ];
  });
}
