import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import * as addFormatsModule from 'ajv-formats';
import { buildOpenApiDocument } from '../../src/api/openapi.js';
import type { RecordedResponse } from './http.js';

// ajv-formats is CommonJS: under NodeNext its plugin is `default` of the namespace.
const addFormats = addFormatsModule.default as unknown as (ajv: Ajv2020) => Ajv2020;

/**
 * Checks real answers of the API against the OpenAPI document it serves: the path and method
 * must be documented, the status must be one of the operation's responses, the content type one
 * of that response's media types, and the body must validate against its schema (JSON Schema
 * 2020-12, as OpenAPI 3.1 uses).
 */

type Json = Record<string, any>;

/**
 * Paths outside the document on purpose: ops endpoints (issue 4) answer for themselves, and the
 * document and its page are named in its description (src/api/openapi.ts).
 */
const UNDOCUMENTED_OK = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs']);

interface Template {
  path: string;
  pattern: RegExp;
  literalSegments: number;
}

export class ContractChecker {
  readonly document: Json;
  private readonly ajv: Ajv2020;
  private readonly templates: Template[];
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(document: Json = buildOpenApiDocument()) {
    this.document = document;
    this.ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(this.ajv);
    // Component schemas become $defs of one schema, so `#/components/schemas/X` refs resolve.
    this.ajv.addSchema({ $id: 'components', $defs: rewriteRefs(document.components?.schemas ?? {}) });
    this.templates = Object.keys(document.paths as Json)
      .map((path) => ({
        path,
        pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+').replace(/[.]/g, '\\.')}$`),
        literalSegments: path.split('/').filter((segment) => segment && !segment.startsWith('{')).length,
      }))
      // `/wallets/{id}/transactions/latest` before `/wallets/{id}/transactions/{txId}`, as express routes them.
      .sort((a, b) => b.literalSegments - a.literalSegments);
  }

  /** A description of what is wrong with `record`, or null when it matches the document. */
  check(record: RecordedResponse): string | null {
    const where = `${record.method} ${record.path} → ${record.status}`;
    // The lookup's path before it moved is answered but left out of the document: its answers
    // must match the successor's.
    const path = record.path.replace(/^\/wallets\/by-external-id\//, '/wallets-by-external-id/');
    const template = this.templates.find((candidate) => candidate.pattern.test(path));
    if (!template) {
      // No route: the generic 404 (or 401 for a caller without a key, who learns nothing about routes).
      if (record.status === 404 || record.status === 401 || UNDOCUMENTED_OK.has(record.path)) return null;
      return `${where}: the path is not in openapi.json (register the route's operation, see docs/api.md)`;
    }
    const operation = (this.document.paths as Json)[template.path][record.method.toLowerCase()] as Json | undefined;
    if (!operation) {
      // An undocumented method: the generic 404 (OPTIONS included), or 401 for a caller without a key.
      if (record.status === 404 || record.status === 401) return null;
      return `${where}: ${record.method} ${template.path} is not in openapi.json`;
    }
    const response = (operation.responses[String(record.status)] ?? operation.responses.default) as Json | undefined;
    if (!response) return `${where}: status ${record.status} is not documented for ${record.method} ${template.path}`;
    if (!response.content) return record.text === '' ? null : `${where}: documented without a body, but has one`;
    const mediaType = (record.contentType ?? '').split(';')[0]!.trim().toLowerCase();
    const media = response.content[mediaType] as Json | undefined;
    if (!media) {
      return `${where}: content type ${mediaType || '(none)'} is not one of ${Object.keys(response.content).join(', ')}`;
    }
    if (!media.schema || !mediaType.endsWith('json')) return null;
    let body: unknown;
    try {
      body = JSON.parse(record.text);
    } catch {
      return `${where}: the body is not JSON: ${record.text.slice(0, 200)}`;
    }
    const key = `${template.path} ${record.method} ${record.status} ${mediaType}`;
    let validate = this.validators.get(key);
    if (!validate) {
      validate = this.ajv.compile(rewriteRefs(media.schema) as Json);
      this.validators.set(key, validate);
    }
    if (validate(body)) return null;
    const errors = (validate.errors ?? []).map((error) => `${error.instancePath || '/'} ${error.message}`).join('; ');
    return `${where}: the body does not match the schema (${errors}): ${record.text.slice(0, 300)}`;
  }

  /** Every mismatch among `records`. */
  checkAll(records: readonly RecordedResponse[]): string[] {
    return records.map((record) => this.check(record)).filter((failure): failure is string => failure !== null);
  }
}

/** Deep copy with `#/components/schemas/X` refs pointing at the `components` schema's `$defs`. */
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) =>
      key === '$ref' && typeof inner === 'string'
        ? [key, inner.replace('#/components/schemas/', 'components#/$defs/')]
        : [key, rewriteRefs(inner)],
    ),
  );
}
