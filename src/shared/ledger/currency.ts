/**
 * Currencies: ISO 4217 alphabetic codes and their minor units, from the ICU data that ships with
 * Node (through Intl), not a table of our own. A code is known when Intl lists it as supported;
 * the service accepts it when its minor units fit the ledger's scale (money.ts: at most 3).
 */
import { UNIT_SCALE } from './money.js';

const SUPPORTED = new Set(Intl.supportedValuesOf('currency'));

export interface Currency {
  code: string;
  minorUnits: number;
}

/** The currency for an ISO 4217 code (upper case, as ISO writes it); null when unknown or unusable. */
export function currencyOf(code: string): Currency | null {
  if (!/^[A-Z]{3}$/.test(code) || !SUPPORTED.has(code)) return null;
  const minorUnits = new Intl.NumberFormat('en', { style: 'currency', currency: code }).resolvedOptions()
    .maximumFractionDigits;
  if (minorUnits === undefined || minorUnits > UNIT_SCALE) return null;
  return { code, minorUnits };
}
