import { describe, expect, it } from 'vitest';
import { centsToDecimal, decimalToCents, decimalToJsonNumber, parseAmount } from '../../src/shared/ledger/money.js';

describe('parseAmount', () => {
  it.each([
    [10, 1000n],
    [10.5, 1050n],
    [-5, -500n],
    [1, 100n],
    [-1, -100n],
    ['12.34', 1234n],
    ['-0012.3', -1230n],
    [999_999_999.99, 99_999_999_999n],
  ])('reads %j exactly', (input, cents) => {
    expect(parseAmount(input)).toEqual({ ok: true, cents });
  });

  it('refuses a float that only approximates a two-digit decimal', () => {
    expect(parseAmount(1.1 + 2.2)).toEqual({
      ok: false,
      message: 'amount must be a decimal with at most 2 fractional digits',
    });
  });

  it('reads the largest allowed amount and refuses one cent more', () => {
    expect(parseAmount('1000000000.00')).toEqual({ ok: true, cents: 100_000_000_000n });
    expect(parseAmount(1_000_000_000)).toEqual({ ok: true, cents: 100_000_000_000n });
    expect(parseAmount('1000000000.01').ok).toBe(false);
    expect(parseAmount(-1_000_000_000.01).ok).toBe(false);
  });

  it.each([0, 0.99, -0.99, '0.5', '-0.01', '0', '-0'])('refuses %j: between -1 and 1', (input) => {
    expect(parseAmount(input)).toEqual({ ok: false, message: 'amount must be <= -1 or >= 1' });
  });

  it.each([1.234, '1.234', '1.', '.5', '+1', ' 1', '1 ', '1e3', '0x10', 'NaN', 'Infinity', '', '١٢', '1_000'])(
    'refuses %j: not a decimal with at most two fractional digits',
    (input) => {
      expect(parseAmount(input).ok).toBe(false);
    },
  );

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e21, 1e-7, Number.MAX_VALUE])(
    'refuses the number %s',
    (input) => {
      expect(parseAmount(input).ok).toBe(false);
    },
  );

  it.each([null, undefined, true, {}, [], [5]])('refuses %j: not a number or string', (input) => {
    expect(parseAmount(input)).toEqual({ ok: false, message: 'amount must be a number or a decimal string' });
  });

  it('refuses very long strings without working on them', () => {
    expect(parseAmount('9'.repeat(10_000))).toEqual({ ok: false, message: 'amount is out of range' });
  });
});

describe('decimal text', () => {
  it.each([
    ['0.00', 0n],
    ['35.00', 3500n],
    ['-12.50', -1250n],
    ['9999999999999.99', 999_999_999_999_999n],
  ])('%s is %s cents and back', (text, cents) => {
    expect(decimalToCents(text)).toBe(cents);
    expect(centsToDecimal(cents)).toBe(text);
  });

  it('adds without floating point error', () => {
    const sum = ['0.10', '0.20'].map((text) => decimalToCents(text)!).reduce((a, b) => a + b);
    expect(centsToDecimal(sum)).toBe('0.30');
  });

  it.each([
    ['35.00', '35.0'],
    ['35.50', '35.5'],
    ['35.25', '35.25'],
    ['-0.10', '-0.1'],
    ['0.00', '0.0'],
    ['1234567890123.99', '1234567890123.99'],
  ])('renders %s in JSON as %s', (text, json) => {
    expect(decimalToJsonNumber(text)).toBe(json);
  });
});
