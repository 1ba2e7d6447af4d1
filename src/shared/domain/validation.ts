import { z } from 'zod';
import { currencyOf } from '../ledger/currency.js';
import { parseAmount, UNIT_SCALE } from '../ledger/money.js';

/**
 * Field rules shared by every entry point. Postgres text cannot hold NUL, and jsonb rejects
 * lone UTF-16 surrogates, so both are refused here rather than failing in the database.
 */
export const storableText = (max: number) =>
  z
    .string()
    .max(max)
    .refine((value) => !value.includes('\u0000'), 'must not contain NUL characters')
    .refine((value) => value.isWellFormed(), 'must be well-formed Unicode');

export const MAX_LABELS = 50;

/**
 * Keys that name JavaScript's object machinery. zod's record silently drops `__proto__`, so a
 * label with it would vanish on write and a filter with it would match everything; all three are
 * refused, on write and in filters alike, before the record sees them.
 */
export const RESERVED_LABEL_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

export const labelsSchema = z.preprocess(
  (labels, context) => {
    if (labels === null || typeof labels !== 'object') return labels;
    for (const key of Object.keys(labels)) {
      if (RESERVED_LABEL_KEYS.includes(key)) {
        context.addIssue({ code: 'custom', message: `the label key "${key}" is reserved`, path: [key] });
      }
    }
    return labels;
  },
  z
    .record(storableText(255).pipe(z.string().min(1)), storableText(1024))
    .refine((labels) => Object.keys(labels).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`),
);

export const externalIdSchema = storableText(255).pipe(z.string().min(1));
export const fingerprintSchema = storableText(255).pipe(z.string().min(1));

/**
 * `void:<transaction id>` is the default fingerprint of that transaction's void. The namespace is
 * reserved: were a plain transaction (or another void) allowed to take it first, the real void
 * would meet its 409 and a client could take that for its own reversal.
 */
export const VOID_FINGERPRINT_PREFIX = 'void:';
export const defaultVoidFingerprint = (originalId: string) => `${VOID_FINGERPRINT_PREFIX}${originalId}`;
export const RESERVED_FINGERPRINT_REASON = `must not start with "${VOID_FINGERPRINT_PREFIX}" (reserved for voids)`;

/** `transfer:<transfer id>:debit` and `:credit` are the fingerprints of a transfer's legs. */
export const TRANSFER_FINGERPRINT_PREFIX = 'transfer:';
export const RESERVED_TRANSFER_FINGERPRINT_REASON = `must not start with "${TRANSFER_FINGERPRINT_PREFIX}" (reserved for the legs of transfers)`;

/** `hold:<hold id>:capture` is the default fingerprint of a hold's capture debit. */
export const HOLD_FINGERPRINT_PREFIX = 'hold:';
export const RESERVED_HOLD_FINGERPRINT_REASON = `must not start with "${HOLD_FINGERPRINT_PREFIX}" (reserved for captures of holds)`;

/** The fingerprint of a plain (non-void) transaction. */
export const transactionFingerprintSchema = fingerprintSchema
  .refine((fingerprint) => !fingerprint.startsWith(VOID_FINGERPRINT_PREFIX), RESERVED_FINGERPRINT_REASON)
  .refine((fingerprint) => !fingerprint.startsWith(TRANSFER_FINGERPRINT_PREFIX), RESERVED_TRANSFER_FINGERPRINT_REASON)
  .refine((fingerprint) => !fingerprint.startsWith(HOLD_FINGERPRINT_PREFIX), RESERVED_HOLD_FINGERPRINT_REASON);
export const descriptionSchema = storableText(1024);

/**
 * A JSON number or decimal string; becomes exact units. The body is read before its wallet, so
 * this takes any amount some currency allows (up to 3 fractional digits); the wallet's own rule is
 * checked once its currency is known (`checkAmountPrecision`, precision.ts). An amount no currency allows is
 * described by the 2-digit rule, the rule of most currencies (and of every wallet before them).
 */
export const amountSchema = z.union([z.number(), z.string()]).transform((input, context) => {
  const parsed = parseAmount(input, UNIT_SCALE);
  if (!parsed.ok) {
    const usual = parseAmount(input, 2);
    context.addIssue({ code: 'custom', message: usual.ok ? parsed.message : usual.message });
    return z.NEVER;
  }
  return parsed.units;
});

/** An ISO 4217 alphabetic code that Intl knows (and whose minor units the ledger holds). */
export const currencySchema = z
  .string()
  .regex(/^[A-Z]{3}$/, { message: 'must be an ISO 4217 alphabetic code such as EUR', abort: true })
  .refine((code) => currencyOf(code) !== null, 'is not a known ISO 4217 currency')
  .transform((code) => currencyOf(code)!);

/**
 * Path ids of bigint identity columns (wallets, webhook subscriptions): a positive integer the
 * API can render exactly. Responses carry ids as JSON numbers, so the API's range is 1..2^53-1;
 * the identity columns never get near it, and anything past it (or past bigint) would otherwise
 * be rounded into some other id. One schema for every route, so they all refuse the same way.
 */
export const MAX_ID = Number.MAX_SAFE_INTEGER;
export const idSchema = z
  .string()
  .regex(/^[1-9][0-9]*$/, { message: 'must be a positive integer', abort: true })
  // Length first: a thousand-digit id is refused without converting it.
  .refine((text) => text.length <= 16 && Number(text) <= MAX_ID, `must be at most ${MAX_ID}`)
  .transform(Number);

export const transactionIdSchema = z.string().uuid('must be a UUID');
