/**
 * Money is held as an integer count of thousandths of a unit (bigint `Units`) in JS and as NUMERIC
 * in Postgres: three fractional digits hold every currency the service accepts (ISO 4217 minor
 * units are 0, 2 or 3; see currency.ts). Nothing here goes through floating point arithmetic.
 */
export type Units = bigint;

/** Fractional digits of `Units`: the most minor units a currency may have. */
export const UNIT_SCALE = 3;
const ONE = 10n ** BigInt(UNIT_SCALE);

export const MIN_ABS_AMOUNT: Units = ONE; // 1
export const MAX_ABS_AMOUNT: Units = 1_000_000_000n * ONE; // 1,000,000,000
/**
 * The highest balance of a wallet whose currency has `minorUnits` fractional digits: 15
 * significant digits, so every balance survives a client's JSON float parse, and for 0 to 2 minor
 * units the original cap of 9,999,999,999,999.99.
 */
export function maxBalance(minorUnits: number): Units {
  if (minorUnits <= 2) return 9_999_999_999_999_990n;
  return 999_999_999_999_999n; // 999,999,999,999.999
}
/** The cap for a 2-digit currency (every wallet created before currencies). */
export const MAX_BALANCE: Units = maxBalance(2);

const DECIMAL = /^(-?)(\d+)(?:\.(\d{1,3}))?$/;

export type AmountParseResult = { ok: true; units: Units } | { ok: false; message: string };

/** Converts exact decimal text with at most three fractional digits to units; null when it is not such text. */
export function decimalToUnits(text: string): Units | null {
  const match = DECIMAL.exec(text);
  if (!match) return null;
  const [, sign, whole, fraction = ''] = match;
  const units = BigInt(whole!) * ONE + BigInt(fraction.padEnd(UNIT_SCALE, '0'));
  return sign === '-' ? -units : units;
}

/**
 * Units as plain decimal text with at least two fractional digits and as many more as the value
 * needs, e.g. -12500n -> "-12.50", 12345n -> "12.345" (what a 2-digit ledger always wrote).
 */
export function unitsToDecimal(units: Units): string {
  const negative = units < 0n;
  const abs = negative ? -units : units;
  const whole = abs / ONE;
  let fraction = (abs % ONE).toString().padStart(UNIT_SCALE, '0');
  while (fraction.length > 2 && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  return `${negative ? '-' : ''}${whole}.${fraction}`;
}

/** Fractional digits `units` needs (0..3). */
export function fractionDigitsOf(units: Units): number {
  let digits = UNIT_SCALE;
  let rest = units < 0n ? -units : units;
  while (digits > 0 && rest % 10n === 0n) {
    rest /= 10n;
    digits -= 1;
  }
  return digits;
}

/**
 * Reads an amount given as a JSON number or a decimal string, for a currency with `minorUnits`
 * fractional digits (2 unless given). Valid amounts are <= -1 or >= 1, have at most that many
 * fractional digits and a bounded magnitude. A JSON number is read through its shortest
 * round-trip text, which is the text the client sent for every amount within the bounds.
 */
export function parseAmount(input: unknown, minorUnits = 2): AmountParseResult {
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
  const units = decimalToUnits(text);
  const fraction = text.split('.')[1] ?? '';
  if (units === null || fraction.length > minorUnits) {
    if (/e/i.test(text)) {
      return { ok: false, message: 'amount must be written as a plain decimal such as 100.00, not in exponent form' };
    }
    return { ok: false, message: precisionMessage(minorUnits) };
  }
  const abs = units < 0n ? -units : units;
  if (abs < MIN_ABS_AMOUNT) return { ok: false, message: 'amount must be <= -1 or >= 1' };
  if (abs > MAX_ABS_AMOUNT) {
    return { ok: false, message: `amount magnitude must be at most ${unitsToDecimal(MAX_ABS_AMOUNT)}` };
  }
  return { ok: true, units };
}

export function precisionMessage(minorUnits: number): string {
  return minorUnits === 0
    ? 'amount must be a whole number in this currency'
    : `amount must be a decimal with at most ${minorUnits} fractional digits`;
}

/**
 * Decimal text as it appears in JSON responses: a number literal with at least one fractional
 * digit, like the original service's `35.0`, `35.5`, `35.25`, `35.125`.
 */
export function decimalToJsonNumber(text: string): string {
  const units = decimalToUnits(text);
  if (units === null) throw new Error(`not a money value: ${text}`);
  const fixed = unitsToDecimal(units);
  return fixed.endsWith('0') ? fixed.slice(0, -1) : fixed;
}
