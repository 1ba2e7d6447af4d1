import { describe, expect, it } from 'vitest';
import { currencyOf } from '../../src/shared/ledger/currency.js';
import {
  unitsToDecimal,
  decimalToUnits,
  decimalToJsonNumber,
  fractionDigitsOf,
  maxBalance,
  parseAmount,
} from '../../src/shared/ledger/money.js';

describe('parseAmount', () => {
  it.each([
    [10, 10_000n],
    [10.5, 10_500n],
    [-5, -5000n],
    [1, 1000n],
    [-1, -1000n],
    ['12.34', 12_340n],
    ['-0012.3', -12_300n],
    [999_999_999.99, 999_999_999_990n],
  ])('reads %j exactly', (input, units) => {
    expect(parseAmount(input)).toEqual({ ok: true, units });
  });

  it('refuses a float that only approximates a two-digit decimal', () => {
    expect(parseAmount(1.1 + 2.2)).toEqual({
      ok: false,
      message: 'amount must be a decimal with at most 2 fractional digits',
    });
  });

  it('reads the largest allowed amount and refuses one cent more', () => {
    expect(parseAmount('1000000000.00')).toEqual({ ok: true, units: 1_000_000_000_000n });
    expect(parseAmount(1_000_000_000)).toEqual({ ok: true, units: 1_000_000_000_000n });
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

  it("takes as many fractional digits as the currency's minor units, no more", () => {
    expect(parseAmount('1.234', 3)).toEqual({ ok: true, units: 1234n });
    expect(parseAmount(-12.345, 3)).toEqual({ ok: true, units: -12_345n });
    expect(parseAmount('1.2345', 3)).toEqual({
      ok: false,
      message: 'amount must be a decimal with at most 3 fractional digits',
    });
    expect(parseAmount('100', 0)).toEqual({ ok: true, units: 100_000n });
    expect(parseAmount('100.0', 0)).toEqual({ ok: false, message: 'amount must be a whole number in this currency' });
    expect(parseAmount(100.5, 0).ok).toBe(false);
  });

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
    ['35.00', 35_000n],
    ['-12.50', -12_500n],
    ['12.345', 12_345n],
    ['-0.001', -1n],
    ['9999999999999.99', 9_999_999_999_999_990n],
  ])('%s is %s units and back', (text, units) => {
    expect(decimalToUnits(text)).toBe(units);
    expect(unitsToDecimal(units)).toBe(text);
  });

  it('adds without floating point error', () => {
    const sum = ['0.10', '0.20'].map((text) => decimalToUnits(text)!).reduce((a, b) => a + b);
    expect(unitsToDecimal(sum)).toBe('0.30');
  });

  it('counts the fractional digits an amount needs', () => {
    expect([1000n, 1200n, 1230n, 1234n, -5n].map(fractionDigitsOf)).toEqual([0, 1, 2, 3, 3]);
  });

  it.each([
    ['35.00', '35.0'],
    ['35.50', '35.5'],
    ['35.25', '35.25'],
    ['35.125', '35.125'],
    ['35.120', '35.12'],
    ['35', '35.0'],
    ['-0.10', '-0.1'],
    ['0.00', '0.0'],
    ['1234567890123.99', '1234567890123.99'],
  ])('renders %s in JSON as %s', (text, json) => {
    expect(decimalToJsonNumber(text)).toBe(json);
  });

  it('caps balances at 15 significant digits', () => {
    expect(unitsToDecimal(maxBalance(2))).toBe('9999999999999.99');
    expect(unitsToDecimal(maxBalance(0))).toBe('9999999999999.99');
    expect(unitsToDecimal(maxBalance(3))).toBe('999999999999.999');
  });
});

describe('currencies (ICU through Intl)', () => {
  it.each([
    ['EUR', 2],
    ['USD', 2],
    ['JPY', 0],
    ['BHD', 3],
    ['KWD', 3],
  ])('%s has %s minor units', (code, minorUnits) => {
    expect(currencyOf(code)).toEqual({ code, minorUnits });
  });

  it.each(['ZZZ', 'eur', 'EURO', '', 'E1R', 'XXX'])('does not know %j', (code) => {
    expect(currencyOf(code)).toBeNull();
  });
});
