/**
 * Money is held as an integer count of cents (bigint) in JS and as NUMERIC in Postgres.
 * Nothing here goes through floating point arithmetic.
 */
export type Cents = bigint;

export const MIN_ABS_AMOUNT: Cents = 100n; // 1.00
export const MAX_ABS_AMOUNT: Cents = 100_000_000_000n; // 1,000,000,000.00
// 9,999,999,999,999.99: 15 significant digits, so every balance survives a client's JSON float parse.
export const MAX_BALANCE: Cents = 999_999_999_999_999n;

const DECIMAL = /^(-?)(\d+)(?:\.(\d{1,2}))?$/;

export type AmountParseResult = { ok: true; cents: Cents } | { ok: false; message: string };

/** Converts exact decimal text with at most two fractional digits to cents; null when it is not such text. */
export function decimalToCents(text: string): Cents | null {
  const match = DECIMAL.exec(text);
  if (!match) return null;
  const [, sign, whole, fraction = ''] = match;
  const cents = BigInt(whole!) * 100n + BigInt(fraction.padEnd(2, '0'));
  return sign === '-' ? -cents : cents;
}

/** Cents as plain decimal text with two fractional digits, e.g. -1250n -> "-12.50". */
export function centsToDecimal(cents: Cents): string {
  const negative = cents < 0n;
  const abs = negative ? -cents : cents;
  const whole = abs / 100n;
  const fraction = (abs % 100n).toString().padStart(2, '0');
  return `${negative ? '-' : ''}${whole}.${fraction}`;
}

/**
 * Reads a transaction amount given as a JSON number or a decimal string.
 * Valid amounts are <= -1 or >= 1, have at most two fractional digits and a bounded magnitude.
 * A JSON number is read through its shortest round-trip text, which is the text the client sent
 * for every amount within the bounds (at most 14 significant digits).
 */
export function parseAmount(input: unknown): AmountParseResult {
  let text: string;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return { ok: false, message: 'amount must be a finite number' };
    text = String(input);
  } else if (typeof input === 'string') {
    text = input;
  } else {
    return { ok: false, message: 'amount must be a number or a decimal string' };
  }
  if (text.length > 32) return { ok: false, message: 'amount is out of range' };
  const cents = decimalToCents(text);
  if (cents === null) {
    return {
      ok: false,
      message: /e/i.test(text)
        ? 'amount must be written as a plain decimal such as 100.00, not in exponent form'
        : 'amount must be a decimal with at most 2 fractional digits',
    };
  }
  const abs = cents < 0n ? -cents : cents;
  if (abs < MIN_ABS_AMOUNT) return { ok: false, message: 'amount must be <= -1 or >= 1' };
  if (abs > MAX_ABS_AMOUNT) {
    return { ok: false, message: `amount magnitude must be at most ${centsToDecimal(MAX_ABS_AMOUNT)}` };
  }
  return { ok: true, cents };
}

/**
 * Decimal text as it appears in JSON responses: a number literal with at least one fractional
 * digit, like the original service's `35.0`, `35.5`, `35.25`.
 */
export function decimalToJsonNumber(text: string): string {
  const cents = decimalToCents(text);
  if (cents === null) throw new Error(`not a money value: ${text}`);
  const fixed = centsToDecimal(cents);
  return fixed.endsWith('0') ? fixed.slice(0, -1) : fixed;
}
