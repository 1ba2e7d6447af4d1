import { Command, InvalidArgumentError } from 'commander';
import { createApiKey, listApiKeys, revokeApiKey, type ApiKeyRow } from './shared/auth/api-key-repository.js';
import { parseScopes, SCOPES, type Scope } from './shared/auth/api-keys.js';
import { loadConfig } from './shared/infra/config.js';
import { createDatabasePool, type DatabasePool } from './shared/infra/db.js';
import { waitForDependencies } from './shared/infra/dependencies.js';

/** `wallet apikey create|list|revoke`: API keys live in the database named by DATABASE_URL. */

async function withPool<T>(work: (pool: DatabasePool) => Promise<T>): Promise<T> {
  const config = loadConfig();
  await waitForDependencies(config, ['Postgres'], 0);
  const pool = await createDatabasePool({ ...config, DB_POOL_SIZE: 1 });
  try {
    return await work(pool);
  } catch (error) {
    if (/relation "api_keys" does not exist/.test(String((error as Error).message))) {
      throw new Error('the database has no api_keys table yet: run `wallet db migrate` (or `db --initdb`) first', {
        cause: error,
      });
    }
    throw error;
  } finally {
    await pool.end();
  }
}

function scopesOption(value: string): Scope[] {
  try {
    return parseScopes(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function keyId(value: string): number {
  if (!/^[1-9][0-9]{0,14}$/.test(value)) throw new InvalidArgumentError('give the numeric id shown by `apikey list`');
  return Number(value);
}

function describe(row: ApiKeyRow): string {
  const state = row.revoked ? `revoked ${row.revoked}` : 'active';
  return `${String(row.id).padStart(4)}  ${row.prefix}…  ${row.name}  [${row.scopes.join(',')}]  created ${row.created}  ${state}`;
}

function fail(error: unknown): never {
  process.stderr.write(`apikey: ${(error as Error).message}\n`);
  process.exit(1);
}

export function apiKeyCommand(): Command {
  const command = new Command('apikey').description('create, list and revoke API keys (in the DATABASE_URL database)');

  command
    .command('create')
    .description('create a key and print it; it is shown only this once')
    .requiredOption('--name <name>', 'who or what uses the key (1..100 characters)')
    .requiredOption('--scopes <list>', `comma-separated: ${SCOPES.join(', ')} (admin implies all)`, scopesOption)
    .option('--json', 'print {id, name, scopes, key} as JSON')
    .action(async (options: { name: string; scopes: Scope[]; json?: boolean }) => {
      const name = options.name.trim();
      if (name.length < 1 || name.length > 100) fail(new Error('--name must be 1..100 characters'));
      const created = await withPool((pool) => createApiKey(pool, { name, scopes: options.scopes })).catch(fail);
      if (options.json) {
        const { id, scopes } = created.row;
        process.stdout.write(`${JSON.stringify({ id, name, scopes, key: created.key })}\n`);
        return;
      }
      process.stdout.write(
        `${created.key}\n\n` +
          `id ${created.row.id}, name "${name}", scopes ${created.row.scopes.join(',')}.\n` +
          'Store the key now: only its hash is kept, it cannot be shown again.\n' +
          'Send it as:  Authorization: Bearer <key>\n',
      );
    });

  command
    .command('list')
    .description('list keys (never their secrets)')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const rows = await withPool((pool) => listApiKeys(pool)).catch(fail);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(rows)}\n`);
        return;
      }
      process.stdout.write(rows.length === 0 ? 'no API keys\n' : `${rows.map(describe).join('\n')}\n`);
    });

  command
    .command('revoke')
    .description('revoke a key; running APIs stop accepting it within API_KEY_CACHE_TTL_MS')
    .argument('<id>', 'the id shown by `apikey list`', keyId)
    .action(async (id: number) => {
      const row = await withPool((pool) => revokeApiKey(pool, id)).catch(fail);
      if (!row) fail(new Error(`no API key with id ${id}`));
      process.stdout.write(`${describe(row)}\n`);
    });

  return command;
}
