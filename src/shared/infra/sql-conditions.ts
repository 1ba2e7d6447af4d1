import { sql, type FragmentSqlToken } from 'slonik';

/** `WHERE a AND b ...` of the conditions that apply (null ones are left out); empty when none does. */
export function whereAll(conditions: readonly (FragmentSqlToken | null)[]): FragmentSqlToken {
  const applying = conditions.filter((condition) => condition !== null);
  return applying.length > 0 ? sql.fragment`WHERE ${sql.join(applying, sql.fragment` AND `)}` : sql.fragment``;
}

/**
 * `labels @> {...}`: every given label matches; null for none. The `labels <> '{}'` it implies is
 * spelled out so that the planner may use the indexes that cover labelled rows only.
 */
export function hasAllLabels(labels: Record<string, string>): FragmentSqlToken | null {
  return Object.keys(labels).length === 0
    ? null
    : sql.fragment`labels @> ${sql.jsonb(labels)} AND labels <> '{}'::jsonb`;
}
