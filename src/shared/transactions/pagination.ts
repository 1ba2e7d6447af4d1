/**
 * Keyset pagination: a page holds at most `limit` items, newest first, and an opaque cursor that
 * names the last item's sort key. The next page starts strictly after it, so concurrent inserts
 * never shift or repeat items the way OFFSET would.
 */
export const MAX_PAGE_SIZE = 500;
export const DEFAULT_PAGE_SIZE = 50;

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** A sort key: a positive integer (an id or a seq) or a journal position (`xid.row.ordinal`). */
export type CursorKey = number | string;

const STRING_KEY = /^\d{1,20}\.\d{1,19}\.\d{1,10}$/;

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify({ k: key })).toString('base64url');
}

/** The sort key a cursor names, or null when it is not one of ours. */
export function decodeCursor(cursor: string): CursorKey | null {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { k?: unknown };
    if (typeof parsed.k === 'string') return STRING_KEY.test(parsed.k) ? parsed.k : null;
    return typeof parsed.k === 'number' && Number.isSafeInteger(parsed.k) && parsed.k > 0 ? parsed.k : null;
  } catch {
    return null;
  }
}

/** Cuts a result fetched with `limit + 1` rows into a page. */
export function toPage<T>(rows: readonly T[], limit: number, keyOf: (row: T) => CursorKey): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null };
}

/**
 * Cuts a result fetched with `limit + 1` rows into a page, when the scan behind it may have
 * stopped short of the end (`resumeBefore`): the page may then hold fewer than `limit` items and
 * still name a cursor, so that a filter few rows match costs each request a bounded amount.
 */
export function toScannedPage<T>(
  rows: readonly T[],
  limit: number,
  keyOf: (row: T) => CursorKey,
  resumeBefore: CursorKey | null,
): Page<T> {
  const page = toPage(rows, limit, keyOf);
  if (page.nextCursor !== null || resumeBefore === null) return page;
  return { items: page.items, nextCursor: encodeCursor(resumeBefore) };
}
