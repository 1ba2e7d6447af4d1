import { z } from 'zod';
import type { TransactionRow } from '../shared/transaction-repository.js';
import {
  amountSchema,
  descriptionSchema,
  externalIdSchema,
  fingerprintSchema,
  labelsSchema,
  transactionIdSchema,
  walletIdSchema,
} from '../shared/validation.js';
import type { WalletRow } from '../shared/wallet-repository.js';
import { Decimal } from './json-response.js';

/** Request shapes: unknown fields are refused, not ignored. */

export const createWalletBody = z
  .object({
    externalId: externalIdSchema,
    labels: labelsSchema.default({}),
  })
  .strict();

export const createTransactionBody = z
  .object({
    amount: amountSchema,
    fingerprint: fingerprintSchema,
    labels: labelsSchema.default({}),
    description: descriptionSchema.nullable().default(null),
  })
  .strict();

export const voidTransactionBody = z
  .object({
    fingerprint: fingerprintSchema.optional(),
    reason: descriptionSchema.optional(),
  })
  .strict();

export const walletParams = z.object({ id: walletIdSchema });
export const transactionParams = z.object({ id: walletIdSchema, txId: transactionIdSchema });

/** Response shapes. */

export function toWalletResponse(wallet: WalletRow) {
  return {
    id: wallet.id,
    externalId: wallet.externalId,
    labels: wallet.labels,
    created: wallet.created,
    balance: new Decimal(wallet.balance),
  };
}

export function toTransactionResponse(transaction: TransactionRow) {
  return {
    id: transaction.id,
    walletId: transaction.walletId,
    amount: new Decimal(transaction.amount),
    fingerprint: transaction.fingerprint,
    labels: transaction.labels,
    description: transaction.description,
    status: transaction.status,
    ...(transaction.reason === null ? {} : { reason: transaction.reason }),
    ...(transaction.refno === null ? {} : { refno: transaction.refno }),
    ...(transaction.oldbalance === null ? {} : { oldbalance: new Decimal(transaction.oldbalance) }),
    ...(transaction.newbalance === null ? {} : { newbalance: new Decimal(transaction.newbalance) }),
    ...(transaction.voids === null ? {} : { voids: transaction.voids }),
    ...(transaction.voidedBy === null ? {} : { voidedBy: transaction.voidedBy }),
    created: transaction.created,
  };
}

/** The original service's `latest` shape, field for field. */
export function toLatestTransactionResponse(transaction: TransactionRow) {
  return {
    id: transaction.id,
    refno: transaction.refno,
    amount: new Decimal(transaction.amount),
    fingerprint: transaction.fingerprint,
    labels: transaction.labels,
    description: transaction.description,
    created: transaction.created,
    oldbalance: transaction.oldbalance === null ? null : new Decimal(transaction.oldbalance),
    newbalance: transaction.newbalance === null ? null : new Decimal(transaction.newbalance),
  };
}
