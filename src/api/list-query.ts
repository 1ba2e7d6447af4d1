import { z } from './openapi-zod.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, decodeCursor, type CursorKey } from '../shared/transactions/pagination.js';
import { transactionStatusSchema } from '../shared/transactions/transaction-repository.js';
import { labelsSchema } from '../shared/domain/validation.js';
import { parseRequest } from './problem.js';

/**
 * Query of a listing: `labels[key]=value` (all must match), `limit` (1..500), `cursor` (from the
 * previous page's nextCursor) and, where it applies, `status`. Unknown parameters are refused.
 */
const pageQuery = z
  .object({
    limit: z
      .string()
      .regex(/^\d{1,3}$/, `must be an integer from 1 to ${MAX_PAGE_SIZE}`)
      .transform(Number)
      .pipe(z.number().min(1, `must be an integer from 1 to ${MAX_PAGE_SIZE}`).max(MAX_PAGE_SIZE))
      .default(DEFAULT_PAGE_SIZE)
      // The query's text is read as above; the document shows the number it stands for.
      .openapi({ type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE }),
    cursor: z
      .string()
      .max(200)
      .transform((cursor, context) => {
        const key = decodeCursor(cursor);
        if (key === null) context.addIssue({ code: 'custom', message: 'is not a cursor this API issued' });
        return key ?? 0;
      })
      .optional(),
    // Always given by parseListQuery (an empty filter when the query has no label); optional to clients.
    labels: labelsSchema.default({}).openapi({
      description: 'Only items having every given label: `labels[key]=value`, repeated for more labels.',
      param: { style: 'deepObject', explode: true },
      example: { reason: 'prize' },
    }),
  })
  .strict();

export const walletListQuery = pageQuery;
export const transactionListQuery = pageQuery.extend({ status: transactionStatusSchema.optional() }).strict();

const LABEL_PARAMETER = /^labels\[(.+)\]$/;

/**
 * Gathers `labels[key]=value` parameters into one `labels` object, then validates the whole query.
 * A bare `labels` (`?labels`, `?labels=x`) is not a filter: it is validated as given, so it is
 * refused rather than silently replaced by an empty filter that matches everything.
 */
export function parseListQuery<S extends typeof walletListQuery | typeof transactionListQuery>(
  schema: S,
  query: Record<string, unknown>,
): { labels: Record<string, string>; after: CursorKey | null; limit: number } & Omit<z.output<S>, 'cursor'> {
  const labels: [string, unknown][] = [];
  const rest: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(query)) {
    const label = LABEL_PARAMETER.exec(name);
    if (label) labels.push([label[1]!, value]);
    else rest[name] = value;
  }
  // fromEntries defines own properties: `labels[__proto__]` stays a key (and is refused), not a prototype.
  const given = 'labels' in rest ? rest : { ...rest, labels: Object.fromEntries(labels) };
  const parsed = parseRequest(schema, given, 'query') as z.output<S>;
  const { cursor, ...page } = parsed;
  return { ...page, after: cursor ?? null };
}
