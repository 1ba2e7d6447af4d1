import type { Currency } from '../ledger/currency.js';
import { fractionDigitsOf, precisionMessage, type Units } from '../ledger/money.js';
import { ValidationError } from './errors.js';

/**
 * The per-currency half of the amount rule (validation.ts's amountSchema is the other). No zod
 * schema is built here: modules loaded before the API's zod extension may import it.
 */
/** An amount read by `amountSchema` has at most the currency's minor units, else a 400 naming `field`. */
export function checkAmountPrecision(amount: Units, currency: Currency, field = 'amount'): void {
  if (fractionDigitsOf(amount) <= currency.minorUnits) return;
  throw new ValidationError(`the amount has more fractional digits than ${currency.code} allows`, [
    { name: field, reason: `${precisionMessage(currency.minorUnits)} (${currency.code})` },
  ]);
}
