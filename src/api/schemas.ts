import { z } from './openapi-zod.js';
import { transactionStatusSchema, type TransactionRow } from '../shared/transactions/transaction-repository.js';
import {
  amountSchema,
  currencySchema,
  descriptionSchema,
  externalIdSchema,
  fingerprintSchema,
  labelsSchema,
  MAX_LABELS,
  RESERVED_LABEL_KEYS,
  idSchema,
  MAX_ID,
  transactionFingerprintSchema,
  transactionIdSchema,
} from '../shared/domain/validation.js';
import type { WalletRow } from '../shared/wallets/wallet-repository.js';
import type { TransferRow } from '../shared/transfers/transfer-repository.js';
import type { HoldRow } from '../shared/holds/hold-repository.js';
import { Decimal } from './json-response.js';

/**
 * Request and response shapes. The request schemas validate requests; all of them, with their
 * `.openapi()` descriptions and examples, also generate the OpenAPI document (src/api/openapi.ts).
 */

/** Documentation of the shared field rules (the rules themselves are in src/shared/domain/validation.ts). */
const LABELS_DESCRIPTION = `String keys (1..255 characters; not ${RESERVED_LABEL_KEYS.join(', ')}) to string values (up to 1024 characters); at most ${MAX_LABELS}.`;
const labels = labelsSchema.openapi({
  description: LABELS_DESCRIPTION,
  maxProperties: MAX_LABELS,
  example: { couponId: '10004871', reason: 'prize' },
});
const externalId = externalIdSchema.openapi({
  description: "The client's own id for the wallet; unique.",
  minLength: 1,
  example: 'userid-123',
});
const fingerprint = transactionFingerprintSchema.openapi({
  description:
    'Unique across all wallets: a retry of the same request answers 409 with the transaction it made; another request with a used fingerprint gets 409 fingerprint-reused. Must not start with `void:` (reserved for voids).',
  minLength: 1,
  example: 'TX123A001',
});

/**
 * Request shapes: unknown fields are refused, not ignored. An optional field gets its default in
 * a transform rather than through zod's `.default()`: the document then shows it optional with no
 * `default` keyword, which generated clients (openapi-typescript) would read as "always present"
 * and so make the caller send it.
 */

const currency = currencySchema.openapi({
  type: 'string',
  pattern: '^[A-Z]{3}$',
  description:
    "ISO 4217 alphabetic code, fixed for the wallet's life; amounts may carry at most its minor units (JPY 0, EUR 2, BHD 3), as Node's ICU data gives them.",
  example: 'EUR',
});

export const createWalletBody = z
  .object({
    externalId,
    labels: labels.optional().openapi({ description: `${LABELS_DESCRIPTION} None when left out.` }),
    currency: currency
      .optional()
      .openapi({ description: 'ISO 4217 alphabetic code; the setting DEFAULT_CURRENCY when left out.' }),
  })
  .strict()
  .transform((body) => ({ ...body, labels: body.labels ?? {} }))
  .openapi('CreateWallet');

export const createTransactionBody = z
  .object({
    amount: amountSchema.openapi({
      description:
        "A JSON number or a decimal string: <= -1 or >= 1, at most as many fractional digits as the wallet's currency has minor units (2 for most), magnitude at most 1,000,000,000. Negative withdraws.",
      examples: [10.0, '-25.00'],
    }),
    fingerprint,
    labels: labels.optional().openapi({ description: `${LABELS_DESCRIPTION} None when left out.` }),
    description: descriptionSchema.nullable().optional().openapi({ example: 'won ticket #10004870' }),
  })
  .strict()
  .transform((body) => ({ ...body, labels: body.labels ?? {}, description: body.description ?? null }))
  .openapi('CreateTransaction');

export const voidTransactionBody = z
  .object({
    fingerprint: fingerprintSchema.optional().openapi({
      description:
        "Defaults to `void:<txId>`. Any other `void:` fingerprint is refused, and so are `transfer:` and `hold:` ones (the legs' and the captures'). A second void of the same transaction answers 409 void-exists with its reversal, whatever the fingerprint.",
    }),
    reason: descriptionSchema.optional(),
  })
  .strict();

/**
 * A path id as the document shows it: an integer 1..2^53-1, so that a generated client passes the
 * number a create returned. The server reads the path's text with `idSchema`, which accepts exactly
 * the decimal spelling of such an integer and answers 400 to anything else.
 */
export function pathId(description: string) {
  return idSchema.openapi({ type: 'integer', minimum: 1, maximum: MAX_ID, param: { description }, example: 1 });
}

export const walletParams = z.object({ id: pathId('The wallet id.') });
export const transactionParams = walletParams.extend({
  txId: transactionIdSchema.openapi({
    param: { description: 'The transaction id (a UUID).' },
    example: 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d',
  }),
});

/** Response shapes. Money is a `Decimal`, written as an exact JSON number (json-response.ts). */

const money = z.instanceof(Decimal).openapi({
  type: 'number',
  description:
    "Exact decimal amount with at most the currency's minor units of fractional digits (3 at most), written as a JSON number such as 35.0.",
  // The document shows what goes over the wire (a number), not the Decimal that renders it.
  example: 35.0,
});
const timestamp = z.string().datetime().openapi({ example: '2026-11-25T09:08:13.315Z' });
const responseLabels = z.record(z.string(), z.string()).openapi({ example: { somekey: 'somevalue' } });
const uuid = z.string().uuid();

export const walletResponse = z
  .object({
    id: z.number().int().positive().openapi({ example: 1 }),
    externalId: z.string().openapi({ example: 'userid-123' }),
    labels: responseLabels,
    created: timestamp,
    balance: money,
    available: money.openapi({
      description:
        'The balance minus the live (active, or captured or released and not yet settled by the queue) holds: what debits, transfers and new holds are decided against.',
      example: 35.0,
    }),
    currency: z
      .string()
      .openapi({ description: 'ISO 4217 alphabetic code of every amount of the wallet.', example: 'EUR' }),
  })
  .strict()
  .openapi('Wallet');
export type WalletResponse = z.infer<typeof walletResponse>;

export const transactionResponse = z
  .object({
    id: uuid.openapi({ example: 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d' }),
    walletId: z.number().int().positive().openapi({ example: 1 }),
    amount: money,
    fingerprint: z.string().openapi({ example: 'TX123A001' }),
    labels: responseLabels,
    description: z.string().nullable(),
    status: transactionStatusSchema.meta({
      description: 'pending until a worker applies or rejects it; applied ones may later be voided.',
    }),
    reason: z.string().optional().openapi({ description: 'Why it was rejected.', example: 'insufficient_funds' }),
    refno: z.number().int().positive().optional().openapi({ description: 'Per-wallet sequence number, when applied.' }),
    oldbalance: money.optional(),
    newbalance: money.optional(),
    voids: uuid.optional().openapi({ description: 'For a reversal: the transaction it voids.' }),
    voidedBy: uuid.optional().openapi({ description: 'For a voided transaction: its reversal.' }),
    transferId: uuid.optional().openapi({
      description: 'For a leg of a transfer (its debit or its credit): the transfer.',
    }),
    created: timestamp,
  })
  .strict()
  .openapi('Transaction');
export type TransactionResponse = z.infer<typeof transactionResponse>;

/** The original service's `latest` shape, field for field. */
export const latestTransactionResponse = z
  .object({
    id: uuid.openapi({ example: 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d' }),
    refno: z.number().int().positive().openapi({ example: 1 }),
    amount: money,
    fingerprint: z.string().openapi({ example: 'TX123A001' }),
    labels: responseLabels,
    description: z.string().nullable(),
    created: timestamp,
    oldbalance: money,
    newbalance: money,
  })
  .strict()
  .openapi('LatestTransaction');
export type LatestTransactionResponse = z.infer<typeof latestTransactionResponse>;

/** A page of a listing: newest first; pass `nextCursor` back as `cursor` for the next page. */
const page = <T extends z.ZodTypeAny>(item: T) =>
  z
    .object({
      items: z.array(item),
      nextCursor: z.string().nullable().openapi({
        description:
          'Give it as `cursor` to read the next page; null on the last page. A filtered page reads a bounded part of the ledger, so it can hold fewer items than `limit` (even none) and still have a next page: read on until this is null.',
      }),
    })
    .strict();
export const walletPageResponse = page(walletResponse).openapi('WalletPage');
export const transactionPageResponse = page(transactionResponse).openapi('TransactionPage');

/** `GET /wallets/:id/balance`: a bare JSON number, as the original service answered. */
export const balanceResponse = z.number().openapi('Balance', {
  description: 'The balance as a bare JSON number (not an object), e.g. 35.0.',
  example: 35.0,
});

/** RFC 9457 problem details; extension members vary by type. */
export const problemResponse = z
  .object({
    type: z.string().openapi({ description: 'Names the problem: /problems/<slug>.', example: '/problems/not-found' }),
    title: z.string().openapi({ example: 'Not Found' }),
    status: z.number().int().min(400).max(599).openapi({ example: 404 }),
    detail: z.string().openapi({ example: 'wallet 7 does not exist' }),
  })
  .openapi('Problem');

export const validationProblemResponse = problemResponse
  .extend({
    invalidParams: z
      .array(z.object({ name: z.string(), reason: z.string() }))
      .optional()
      .openapi({ description: 'Each invalid field and why (validation errors only).' }),
  })
  .openapi('ValidationProblem', {
    example: {
      type: '/problems/validation-error',
      title: 'Invalid request',
      status: 400,
      detail: 'the request body is invalid',
      invalidParams: [{ name: 'amount', reason: 'amount must be <= -1 or >= 1' }],
    },
  });

export const duplicateExternalIdProblemResponse = problemResponse
  .extend({
    walletId: z.number().int().positive(),
    wallet: walletResponse
      .optional()
      .openapi({ description: 'The existing wallet: only for a key that may read wallets (`wallets:read`).' }),
  })
  .openapi('DuplicateExternalIdProblem');

export const duplicateFingerprintProblemResponse = problemResponse
  .extend({ transaction: transactionResponse })
  .openapi('DuplicateFingerprintProblem', {
    description: '`/problems/duplicate-fingerprint`: a replay of the same request; `transaction` is the one it made.',
  });

export const fingerprintReusedProblemResponse = problemResponse.openapi('FingerprintReusedProblem', {
  description:
    '`/problems/fingerprint-reused`: the fingerprint is taken by a different request (another wallet, amount, labels or description); nothing about it is disclosed.',
  example: {
    type: '/problems/fingerprint-reused',
    title: 'Fingerprint used by another request',
    status: 409,
    detail: 'this fingerprint is already used by a different request; choose another fingerprint',
  },
});

export const voidExistsProblemResponse = problemResponse
  .extend({ transaction: transactionResponse })
  .openapi('VoidExistsProblem', {
    description:
      '`/problems/void-exists`: the transaction already has a live (pending or applied) void; `transaction` is that reversal (its `voids` names the original).',
  });

export const notVoidableProblemResponse = problemResponse
  .extend({ transaction: transactionResponse })
  .openapi('NotVoidableProblem', {
    description: '`/problems/not-voidable`: `transaction` is the original, in the state that forbids the void.',
  });

export const forbiddenProblemResponse = problemResponse
  .extend({ requiredScope: z.string().openapi({ example: 'wallets:write' }) })
  .openapi('ForbiddenProblem');

/** Response builders, typed by the schemas above. */

export function toWalletResponse(wallet: WalletRow): WalletResponse {
  return {
    id: wallet.id,
    externalId: wallet.externalId,
    labels: wallet.labels,
    created: wallet.created,
    balance: new Decimal(wallet.balance),
    available: new Decimal(wallet.available),
    currency: wallet.currency,
  };
}

export function toTransactionResponse(transaction: TransactionRow): TransactionResponse {
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
    ...(transaction.transferId === null ? {} : { transferId: transaction.transferId }),
    created: transaction.created,
  };
}

function present<T>(value: T | null, field: string): T {
  // An applied transaction always has these (a CHECK constraint guarantees it).
  if (value === null) throw new Error(`applied transaction without ${field}`);
  return value;
}

export function toLatestTransactionResponse(transaction: TransactionRow): LatestTransactionResponse {
  return {
    id: transaction.id,
    refno: present(transaction.refno, 'refno'),
    amount: new Decimal(transaction.amount),
    fingerprint: transaction.fingerprint,
    labels: transaction.labels,
    description: transaction.description,
    created: transaction.created,
    oldbalance: new Decimal(present(transaction.oldbalance, 'oldbalance')),
    newbalance: new Decimal(present(transaction.newbalance, 'newbalance')),
  };
}

/** Transfers (docs/design.md, Transfers): request and response shapes. */

const walletRef = (description: string) => z.number().int().min(1).max(MAX_ID).openapi({ description, example: 1 });

export const createTransferBody = z
  .object({
    from: walletRef('The wallet debited.'),
    to: walletRef('The wallet credited; another wallet than `from`, of the same currency.'),
    amount: amountSchema.openapi({
      description:
        "A JSON number or a decimal string, >= 1, with at most the currency's minor units of fractional digits, at most 1,000,000,000.",
      examples: [10.0, '25.00'],
    }),
    fingerprint: fingerprintSchema.openapi({
      description:
        'Unique among transfers: a retry of the same request answers 409 duplicate-fingerprint with the transfer it made; another request with a used fingerprint gets 409 fingerprint-reused.',
      minLength: 1,
      example: 'TR123A001',
    }),
    labels: labels.optional().openapi({ description: `${LABELS_DESCRIPTION} None when left out.` }),
    description: descriptionSchema.nullable().optional().openapi({ example: 'prize payout' }),
  })
  .strict()
  .transform((body) => ({ ...body, labels: body.labels ?? {}, description: body.description ?? null }))
  .openapi('CreateTransfer');

export const voidTransferBody = z
  .object({
    transferId: uuid.openapi({
      description: 'The completed transfer to void.',
      example: 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d',
    }),
    reason: descriptionSchema.optional(),
  })
  .strict()
  .openapi('VoidTransfer');

export const transferParams = z.object({
  transferId: uuid.openapi({
    param: { description: 'The transfer id (a UUID).' },
    example: 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d',
  }),
});
export const transferFingerprintParams = z.object({
  fingerprint: fingerprintSchema.openapi({
    param: { description: 'The fingerprint it was posted with.' },
    example: 'TR123A001',
  }),
});
/** limit and cursor of the listings paged by seq (transfers, holds): newest first, 50 by default. */
const seqPageQuery = {
  limit: z
    .string()
    .regex(/^\d{1,3}$/, 'must be an integer from 1 to 500')
    .transform(Number)
    .pipe(z.number().min(1, 'must be an integer from 1 to 500').max(500))
    .default(50)
    .openapi({ type: 'integer', minimum: 1, maximum: 500, default: 50 }),
  cursor: z.string().max(20).optional().openapi({ description: "The previous page's nextCursor." }),
};
export const transferListQuery = z
  .object({
    ...seqPageQuery,
  })
  .strict();

export const transferResponse = z
  .object({
    id: uuid.openapi({ example: 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d' }),
    from: z.number().int().positive(),
    to: z.number().int().positive(),
    amount: money,
    currency: z.string().openapi({ example: 'EUR' }),
    fingerprint: z.string(),
    labels: responseLabels,
    description: z.string().nullable(),
    status: z.enum(['pending', 'completed', 'rejected', 'voiding', 'voided']).openapi({
      description:
        'pending until the debit leg is decided and, once it is applied, until the credit leg is applied; rejected when the debit was (`reason`), and then no credit ever exists. After a void: voiding once the credit leg is reversed (the money is on its way back), voided once the debit leg is reversed too.',
    }),
    reason: z.string().optional().openapi({ example: 'insufficient_funds' }),
    debit: uuid.openapi({ description: 'The debit leg: a transaction of `from`.' }),
    credit: uuid
      .optional()
      .openapi({ description: 'The credit leg, a transaction of `to`: reserved when the debit is applied.' }),
    created: timestamp,
  })
  .strict()
  .openapi('Transfer');
export type TransferResponse = z.infer<typeof transferResponse>;
export const transferPageResponse = page(transferResponse).openapi('TransferPage');

export const duplicateTransferFingerprintProblemResponse = problemResponse
  .extend({ transfer: transferResponse })
  .openapi('DuplicateTransferFingerprintProblem', {
    description:
      '`/problems/duplicate-fingerprint`: a replay of the same transfer request; `transfer` is the one it made.',
  });

export const transferProblemResponse = problemResponse
  .extend({ transfer: transferResponse })
  .openapi('TransferProblem', {
    description:
      '`/problems/transfer-not-voidable` or `/problems/transfer-void-exists`: `transfer` is the transfer as it is.',
  });

export function toTransferResponse(transfer: TransferRow): TransferResponse {
  return {
    id: transfer.id,
    from: transfer.from,
    to: transfer.to,
    amount: new Decimal(transfer.amount),
    currency: transfer.currency,
    fingerprint: transfer.fingerprint,
    labels: transfer.labels,
    description: transfer.description,
    status: transfer.status,
    ...(transfer.reason === null ? {} : { reason: transfer.reason }),
    debit: transfer.debitId,
    ...(transfer.creditId === null ? {} : { credit: transfer.creditId }),
    created: transfer.created,
  };
}

/** Holds (docs/design.md, Holds): request and response shapes. */

export const createHoldBody = z
  .object({
    amount: amountSchema.openapi({
      description:
        "The amount to reserve: a JSON number or a decimal string, > 0, with at most the currency's minor units of fractional digits.",
      examples: [10.0, '25.00'],
    }),
    fingerprint: fingerprintSchema.openapi({
      description:
        'Unique among holds: a retry of the same request answers 409 duplicate-fingerprint with the hold it made; another request with a used fingerprint gets 409 fingerprint-reused.',
      minLength: 1,
      example: 'HOLD-123',
    }),
    expiresInSeconds: z.number().int().min(1).optional().openapi({
      description:
        'Seconds until the workers release the hold if it is neither captured nor released; the setting HOLD_DEFAULT_EXPIRY_SECONDS (7 days) when left out, at most HOLD_MAX_EXPIRY_SECONDS (30 days).',
      example: 3600,
    }),
    labels: labels.optional().openapi({ description: `${LABELS_DESCRIPTION} None when left out.` }),
    description: descriptionSchema.nullable().optional().openapi({ example: 'card authorisation' }),
  })
  .strict()
  .transform((body) => ({
    ...body,
    expiresInSeconds: body.expiresInSeconds ?? null,
    labels: body.labels ?? {},
    description: body.description ?? null,
  }))
  .openapi('CreateHold');

export const captureHoldBody = z
  .object({
    amount: amountSchema.optional().openapi({
      description: 'At most the held amount; the whole hold when left out. The rest is released with the capture.',
      examples: [7.5],
    }),
    fingerprint: transactionFingerprintSchema.optional().openapi({
      description:
        'The fingerprint of the capture debit (a transaction of the wallet); `hold:<hold id>:capture` when left out. Must not be used by another transaction. A repeat with the same fingerprint answers 200 with the hold (with another amount: 409 fingerprint-reused); once captured, a capture with another fingerprint gets 409 hold-not-active. Without one, a repeat of the same amount answers 200.',
      minLength: 1,
      example: 'CAPTURE-123',
    }),
  })
  .strict()
  .transform((body) => ({ amount: body.amount ?? null, fingerprint: body.fingerprint ?? null }))
  .openapi('CaptureHold');

export const releaseHoldBody = z
  .object({
    fingerprint: fingerprintSchema.optional().openapi({
      description:
        'Makes the release idempotent by it: a repeat with the same fingerprint answers 200 with the hold; once released, a release with another fingerprint gets 409 hold-not-active. Unique among releases: one used by another release is 409 fingerprint-reused. Without one, any repeat after a release answers 200.',
      minLength: 1,
      example: 'RELEASE-123',
    }),
  })
  .strict()
  .openapi('ReleaseHold');

export const holdParams = walletParams.extend({
  holdId: uuid.openapi({
    param: { description: 'The hold id (a UUID).' },
    example: 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d',
  }),
});

const holdStatus = z.enum(['pending', 'active', 'rejected', 'captured', 'released', 'expired']);

export const holdListQuery = z
  .object({
    status: holdStatus.optional().openapi({ description: 'Only holds of this status.' }),
    ...seqPageQuery,
  })
  .strict();

export const holdResponse = z
  .object({
    id: uuid.openapi({ example: 'a3e863bf-14de-494a-bd39-d2bd5ac1ed2d' }),
    walletId: z.number().int().positive().openapi({ example: 1 }),
    amount: money,
    fingerprint: z.string(),
    labels: responseLabels,
    description: z.string().nullable(),
    status: holdStatus.openapi({
      description:
        "pending until the wallet's queue decides it; active (its amount counts against `available`) or rejected (`reason`); then exactly one of captured, released or expired.",
    }),
    reason: z.string().optional().openapi({ example: 'insufficient_funds' }),
    expiresAt: timestamp,
    capturedAmount: money.optional().openapi({ description: 'Once captured: the amount debited.', example: 7.5 }),
    captureTransactionId: uuid
      .optional()
      .openapi({ description: 'Once captured: the debit, a transaction of the wallet with its own refno.' }),
    held: z.boolean().openapi({
      description:
        "True while the hold's amount counts against the wallet's `available`: active, or captured, released or expired until the wallet's queue has taken it out (a capture with its debit).",
    }),
    created: timestamp,
  })
  .strict()
  .openapi('Hold');
export type HoldResponse = z.infer<typeof holdResponse>;
export const holdPageResponse = page(holdResponse).openapi('HoldPage');

export const duplicateHoldFingerprintProblemResponse = problemResponse
  .extend({ hold: holdResponse })
  .openapi('DuplicateHoldFingerprintProblem', {
    description: '`/problems/duplicate-fingerprint`: a replay of the same hold request; `hold` is the one it made.',
  });

export const holdProblemResponse = problemResponse.extend({ hold: holdResponse }).openapi('HoldProblem', {
  description:
    '`/problems/hold-not-active`: the hold was captured, released or expired already (or is pending, or was rejected); `hold` is the hold as it is and the detail says which.',
});

export function toHoldResponse(hold: HoldRow): HoldResponse {
  return {
    id: hold.id,
    walletId: hold.walletId,
    amount: new Decimal(hold.amount),
    fingerprint: hold.fingerprint,
    labels: hold.labels,
    description: hold.description,
    status: hold.status,
    ...(hold.reason === null ? {} : { reason: hold.reason }),
    expiresAt: hold.expiresAt,
    ...(hold.capturedAmount === null ? {} : { capturedAmount: new Decimal(hold.capturedAmount) }),
    ...(hold.captureTransactionId === null ? {} : { captureTransactionId: hold.captureTransactionId }),
    held: hold.status !== 'pending' && hold.status !== 'rejected' && !hold.heldReleased,
    created: hold.created,
  };
}
