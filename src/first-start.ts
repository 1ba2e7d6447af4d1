/**
 * What `start` (and `api`) say to a person at a terminal once the service is up: where it is,
 * where its reference and metrics are, how to stop it, and, on a first start with no API key in
 * the database, one admin key made for them and shown this once (as Jenkins shows its initial
 * admin password). Without a terminal (a container, CI) no key is made: a warning says none
 * exists and how to create one. The JSON log lines stay as they are, for machines.
 */
import { anyApiKeyExists, createFirstApiKey } from './shared/auth/api-key-repository.js';
import type { Config } from './shared/infra/config.js';
import { createDatabasePool, type DatabasePool } from './shared/infra/db.js';
import type { Logger } from './shared/infra/logger.js';

export const FIRST_KEY_NAME = 'first start';

export const CREATE_KEY_COMMAND = 'npm run apikey -- create --name me --scopes admin';

/** Where the service stands with API keys, as the banner tells it. */
export type KeyState =
  | { kind: 'created'; key: string }
  | { kind: 'exists' }
  | { kind: 'none' }
  | { kind: 'auth-disabled' }
  /** The check itself failed (e.g. the database is not migrated yet); the log says why. */
  | { kind: 'unknown' };

/**
 * Makes the first admin key if the database has no key, `interactive` (stdout is a terminal) and
 * BOOTSTRAP_API_KEY allows; otherwise, with no key at all, warns in the log how to create one.
 */
export async function settleFirstKey(
  config: Pick<Config, 'DATABASE_URL' | 'AUTH_DISABLED' | 'BOOTSTRAP_API_KEY'>,
  logger: Logger,
  interactive: boolean,
): Promise<KeyState> {
  if (config.AUTH_DISABLED) return { kind: 'auth-disabled' };
  const pool = await createDatabasePool({ DATABASE_URL: config.DATABASE_URL, DB_POOL_SIZE: 1 });
  try {
    return await settle(pool, config.BOOTSTRAP_API_KEY && interactive, logger);
  } catch (error) {
    logger.warn({ err: error }, 'could not check whether an API key exists');
    return { kind: 'unknown' };
  } finally {
    await pool.end();
  }
}

async function settle(pool: DatabasePool, mayCreate: boolean, logger: Logger): Promise<KeyState> {
  if (await anyApiKeyExists(pool)) return { kind: 'exists' };
  if (mayCreate) {
    const created = await createFirstApiKey(pool, { name: FIRST_KEY_NAME, scopes: ['admin'] });
    if (!created) return { kind: 'exists' }; // another process made the first key just now
    logger.info(
      { keyId: created.row.id, name: FIRST_KEY_NAME },
      'created the first API key (admin), shown once on the terminal',
    );
    return { kind: 'created', key: created.key };
  }
  logger.warn(
    `no API key exists: every API call answers 401 until one is created with \`${CREATE_KEY_COMMAND}\` (or \`wallet apikey create --name me --scopes admin\` where the service is installed)`,
  );
  return { kind: 'none' };
}

/** `0.0.0.0` and `::` listen everywhere: a browser on this machine reaches them as localhost. */
export function baseUrl(host: string, port: number): string {
  const name = host === '0.0.0.0' || host === '::' || host === '' ? 'localhost' : host;
  return `http://${name.includes(':') ? `[${name}]` : name}:${port}`;
}

export interface BannerFacts {
  apiUrl: string;
  /** The worker's ops URL, when `start` runs one. */
  workerOpsUrl: string | null;
  keys: KeyState;
}

/** The banner's text: a few short lines, no colours, no JSON. */
export function formatBanner(facts: BannerFacts): string {
  const { apiUrl, workerOpsUrl, keys } = facts;
  const lines = [
    '',
    workerOpsUrl
      ? '  Wallet service is running: the API and one worker.'
      : '  Wallet API is running (no worker in this process).',
    '',
    `    API          ${apiUrl}`,
    `    Reference    ${apiUrl}/docs`,
    `    Metrics      ${apiUrl}/metrics`,
    workerOpsUrl
      ? `    Worker ops   ${workerOpsUrl}/metrics, /healthz, /readyz`
      : '    Worker       none: run `npm run worker` elsewhere, or the transactions stay pending',
    '',
  ];
  switch (keys.kind) {
    case 'created':
      lines.push(
        '  No API key existed, so this admin key was made for you. It is shown only now: keep it.',
        '',
        `    export KEY=${keys.key}`,
        '',
        `  Try:  curl -s -H "authorization: Bearer $KEY" ${apiUrl}/wallets`,
      );
      break;
    case 'exists':
    case 'unknown':
      lines.push('  Every call needs an API key: Authorization: Bearer <key>.', `  Another one: ${CREATE_KEY_COMMAND}`);
      break;
    case 'none':
      lines.push('  No API key exists, so every call answers 401 until you create one:', `    ${CREATE_KEY_COMMAND}`);
      break;
    case 'auth-disabled':
      lines.push('  AUTH_DISABLED=true: no key is checked, every caller is admin. Local development only!');
      break;
  }
  lines.push('', `  Stop with Ctrl-C${workerOpsUrl ? ' (stops the API and the worker)' : ''}.`, '');
  return lines.join('\n');
}
