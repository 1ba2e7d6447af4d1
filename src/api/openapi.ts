import { OpenApiGeneratorV31, OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { SCOPES } from '../shared/auth/api-keys.js';
import { SECURITY_SCHEME } from './operation.js';
import { registerLookupPaths } from './routes/lookups.js';
import { registerTransactionPaths } from './routes/transactions.js';
import { registerTransferPaths } from './routes/transfers.js';
import { registerHoldPaths } from './routes/holds.js';
import { registerWalletPaths } from './routes/wallets.js';
import { registerWebhookPaths } from './routes/webhooks.js';

/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate requests. Each
 * route module registers its own operations; a new module adds its `register…Paths` here.
 * The document describes the API a client calls; the open operator and documentation paths
 * (/healthz, /readyz, /metrics, this document at /openapi.json and its page at /docs) are named in
 * its description instead, as a generated client has no use for them.
 */
export const pathRegistrars: ReadonlyArray<(registry: OpenAPIRegistry) => void> = [
  registerWalletPaths,
  registerTransactionPaths,
  registerTransferPaths,
  registerHoldPaths,
  registerLookupPaths,
  registerWebhookPaths,
];

const DESCRIPTION = `Wallets and their money transactions. Transactions are applied asynchronously, one wallet at a time and in order: a post answers 202 with the pending transaction and a Location to poll (or, with \`Prefer: wait=N\`, its outcome).

**Authentication.** Every operation except \`/openapi.json\`, \`/docs\`, \`/healthz\`, \`/readyz\` and \`/metrics\` needs an API key, sent as \`Authorization: Bearer wk_…\`. Keys are created by an operator (\`wallet apikey create --name X --scopes …\`) and hold scopes: ${SCOPES.map((scope) => `\`${scope}\``).join(', ')} (\`admin\` implies all). No or an unknown key: 401; a key without the operation's scope: 403; too many requests with one key: 429 with \`Retry-After\`.

**This document** is served at \`/openapi.json\`, and as an interactive reference at \`/docs\`; \`/healthz\`, \`/readyz\` and \`/metrics\` are for operators (liveness, readiness, Prometheus).

**Errors** are RFC 9457 \`application/problem+json\`. Every answer carries an \`X-Request-Id\` (yours, if you sent a sane one: 1-128 of \`A-Z a-z 0-9 . _ : -\`), also found in the service's logs.`;

export function buildOpenApiDocument(): ReturnType<OpenApiGeneratorV31['generateDocument']> {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', SECURITY_SCHEME, {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'wk_ + 43 base64url characters',
    description: 'An API key created with `wallet apikey create`; each operation names the scope it needs.',
  });
  for (const register of pathRegistrars) register(registry);
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Wallet service API',
      version: '1.0.0',
      description: DESCRIPTION,
      // No licence has been chosen for this service: it is not licensed to anyone for now.
      license: { name: 'Proprietary: all rights reserved', identifier: 'LicenseRef-Proprietary' },
    },
    servers: [{ url: '/' }],
    tags: [
      { name: 'wallets', description: 'Create and read wallets.' },
      { name: 'transactions', description: 'Post, poll and void money transactions.' },
      { name: 'webhooks', description: 'Event subscriptions (admin).' },
    ],
  });
}

let cached: string | undefined;

/** The document as JSON text, built once per process. */
export function openApiJson(): string {
  cached ??= JSON.stringify(buildOpenApiDocument());
  return cached;
}
