/**
 * ES2025/Node 22+ JSON additions that TypeScript's bundled lib does not declare yet:
 * the reviver's `context.source` (the literal text of a primitive) and `JSON.rawJSON`.
 */
interface JSONReviverContext {
  /** The literal text of a primitive value (a number, string, boolean or null); absent for objects and arrays. */
  source?: string;
}

interface JSON {
  parse(
    text: string,
    reviver: (this: Record<string, unknown>, key: string, value: unknown, context: JSONReviverContext) => unknown,
  ): unknown;
  /** A value that JSON.stringify writes as the given JSON text, verbatim. */
  rawJSON(text: string): object;
  isRawJSON(value: unknown): boolean;
}
