import { ValidationError } from './errors.js';

/**
 * Listings paged by seq, newest first (a wallet's transfers, its holds): the cursor is the seq of
 * the last row of the previous page, and a page asks the database for one row more than it shows.
 */

/** The seq before which the page starts, from the client's cursor (null: the first page). */
export function seqBeforeCursor(cursor: string | null): number | null {
  if (cursor === null) return null;
  if (!/^[1-9][0-9]{0,15}$/.test(cursor)) {
    throw new ValidationError('the request query is invalid', [
      { name: 'cursor', reason: 'is not a cursor of this listing' },
    ]);
  }
  return Number(cursor);
}

/** The page of `rows` (read with limit + 1) and the cursor of the next one, if there is one. */
export function seqPage<T extends { seq: number }>(
  rows: readonly T[],
  limit: number,
): { items: readonly T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  return { items, nextCursor: rows.length > limit ? String(items.at(-1)!.seq) : null };
}
