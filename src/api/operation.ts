import type { OpenAPIRegistry, ResponseConfig, RouteConfig } from '@asteasolutions/zod-to-openapi';
import type { RequestHandler, Router } from 'express';
import type { Scope } from '../shared/auth/api-keys.js';
import { requireScope } from './auth.js';
import { z } from './openapi-zod.js';
import { forbiddenProblemResponse, problemResponse } from './schemas.js';

/**
 * One HTTP operation of the API, described once: the express route is mounted from it (method,
 * path, required scope) and the OpenAPI document is generated from it (the same plus summary,
 * request and response schemas). See docs/api.md, "Adding a route".
 */
export type ApiOperation = Omit<RouteConfig, 'method' | 'path' | 'security'> & {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** Express syntax, e.g. `/wallets/:id`; the document shows `/wallets/{id}`. */
  path: string;
  /** The scope an API key needs (`admin` implies all); null: open to anyone, no key needed. */
  scope: Scope | null;
};

/** Gives an operation its type; nothing else. */
export function defineOperation(operation: ApiOperation): ApiOperation {
  return operation;
}

/** Mounts `handlers` on `router` at the operation's method and path, behind its scope check. */
export function route(router: Router, operation: ApiOperation, ...handlers: RequestHandler[]): void {
  const chain = operation.scope === null ? handlers : [requireScope(operation.scope), ...handlers];
  router[operation.method](operation.path, ...chain);
}

export const SECURITY_SCHEME = 'apiKey';

export const PROBLEM_JSON = 'application/problem+json';

export function problemContent(schema: z.ZodTypeAny = problemResponse) {
  return { [PROBLEM_JSON]: { schema } };
}

const retryAfter = z.string().openapi({ description: 'Seconds to wait before retrying.', example: '5' });
const challenge = z.string().openapi({
  description: 'The Bearer challenge (RFC 6750).',
  example: 'Bearer realm="wallet", error="invalid_token"',
});

/** Answers any operation that needs a key can give. */
function securedResponses(scope: Scope): Record<string, ResponseConfig> {
  return {
    401: {
      description: 'No API key, or an unknown, revoked or malformed one.',
      headers: z.object({ 'WWW-Authenticate': challenge }),
      content: problemContent(),
    },
    403: {
      description: `The API key lacks the scope \`${scope}\`.`,
      headers: z.object({ 'WWW-Authenticate': challenge }),
      content: problemContent(forbiddenProblemResponse),
    },
    429: {
      description: 'Too many requests with this API key; retry after `Retry-After` seconds.',
      headers: z.object({
        'Retry-After': retryAfter,
        'RateLimit-Limit': z.string().openapi({ description: 'Requests allowed in a burst.' }),
        'RateLimit-Remaining': z.string().openapi({ description: 'Requests left in the burst now.' }),
      }),
      content: problemContent(),
    },
  };
}

/** Answers every operation that reads a JSON body can give (express.json and requireJsonBody). */
const bodyResponses: Record<string, ResponseConfig> = {
  413: { description: 'The body is over the size limit.', content: problemContent() },
  415: { description: 'The body is not UTF-8 application/json.', content: problemContent() },
};

/** Answers every operation can give. */
const commonResponses: Record<string, ResponseConfig> = {
  500: { description: 'Unexpected failure; the body never holds details.', content: problemContent() },
  503: {
    description: 'A dependency (the database) is unavailable; retry later.',
    headers: z.object({ 'Retry-After': retryAfter }),
    content: problemContent(),
  },
};

/** `/wallets/:id/transactions/:txId` → `/wallets/{id}/transactions/{txId}`. */
export function toOpenApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/**
 * Adds the operation to the document, with its security requirement and the shared error answers
 * (413/415 for operations with a body, 401/403/429 for those that need a key, 500/503 for all).
 */
export function registerOperation(registry: OpenAPIRegistry, operation: ApiOperation): void {
  const { scope, path, responses, description, ...rest } = operation;
  const scopeNote =
    scope === null ? 'Open: no API key needed.' : `Needs an API key with scope \`${scope}\` (or \`admin\`).`;
  registry.registerPath({
    ...rest,
    path: toOpenApiPath(path),
    description: description ? `${description}\n\n${scopeNote}` : scopeNote,
    // For a non-OAuth scheme, OpenAPI 3.1 lets the list name the roles (here: scopes) required.
    security: scope === null ? [] : [{ [SECURITY_SCHEME]: [scope] }],
    ...(scope === null ? {} : { 'x-required-scope': scope }),
    responses: {
      ...responses,
      ...(rest.request?.body ? bodyResponses : {}),
      ...(scope === null ? {} : securedResponses(scope)),
      ...commonResponses,
    },
  });
}

export function registerOperations(registry: OpenAPIRegistry, operations: Record<string, ApiOperation>): void {
  for (const operation of Object.values(operations)) registerOperation(registry, operation);
}
