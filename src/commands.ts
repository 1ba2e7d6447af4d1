/** The `wallet` command line (db, api, worker, start, apikey); cli.ts loads it once the Node version is right. */
import closeWithGrace from 'close-with-grace';
import { Command } from 'commander';
import { startApi } from './api/server.js';
import { SUPERVISED_ENV, runTogether, tellSupervisorReady } from './run-together.js';
import { baseUrl, formatBanner, settleFirstKey } from './first-start.js';
import { apiKeyCommand } from './apikey-cli.js';
import { ConfigError, loadConfig, type Config } from './shared/infra/config.js';
import { DependenciesUnreachableError, waitForDependencies, type Dependency } from './shared/infra/dependencies.js';
import { createLogger, type Logger } from './shared/infra/logger.js';
import { createDatabaseIfMissing, dropDatabase, migrate, type MigrationSettings } from './shared/infra/migrate.js';
import { currencyOf } from './shared/ledger/currency.js';
import { shutdownTracing } from './shared/telemetry/tracing.js';
import { startWorker } from './worker/worker.js';
import { auditLedger, describeViolation } from './shared/audit/ledger-audit.js';
import { createDatabasePool } from './shared/infra/db.js';

/** Wallets that exist before migration 006 get the deployment's DEFAULT_CURRENCY. */
function migrationSettings(config: Config): MigrationSettings {
  const currency = currencyOf(config.DEFAULT_CURRENCY);
  return currency ? { defaultCurrency: { code: currency.code, minorUnits: currency.minorUnits } } : {};
}

const BOTH: readonly Dependency[] = ['Postgres', 'Redis'];

/** A person is watching: the banner (and a first key) are for them. */
const onTerminal = () => Boolean(process.stdout.isTTY);

interface Closable {
  close(): Promise<void>;
}

async function prepareDatabase(config: Config, logger: Logger): Promise<void> {
  const created = await createDatabaseIfMissing(config.DATABASE_URL);
  const result = await migrate(config.DATABASE_URL, undefined, migrationSettings(config));
  logger.info({ created, applied: result.applied, alreadyApplied: result.alreadyApplied.length }, 'database ready');
}

/** Logging must not stop a shutdown: a closed stdout pipe throws EPIPE. */
function tryLog(log: () => void): void {
  try {
    log();
  } catch {
    // nothing left to tell
  }
}

/**
 * Runs until a signal (SIGTERM, SIGINT, ...) or a crash (uncaughtException, unhandledRejection),
 * then closes each part in reverse order through the same path, within the shutdown timeout.
 * A crash logs its reason and exits 1; a signal exits 0 once everything is closed.
 */
function closeGracefully(parts: Closable[], config: Config, logger: Logger): () => void {
  const closer = closeWithGrace(
    {
      delay: config.SHUTDOWN_TIMEOUT_MS,
      logger: { error: (message: unknown) => tryLog(() => logger.error({ detail: message }, 'shutdown')) },
      onTimeout: () => tryLog(() => logger.error('shutdown timed out')),
    },
    async ({ signal, err }) => {
      if (err) tryLog(() => logger.fatal({ err }, 'crashed; shutting down'));
      else tryLog(() => logger.info({ signal }, 'shutting down'));
      for (const part of [...parts].reverse()) await part.close();
      await shutdownTracing(); // flush the last spans (a no-op when tracing is off)
    },
  );
  return () => closer.close();
}

/** A bad setting or a missing server: said in one line for people (stderr), no stack trace. */
function failToStart(logger: Logger | null, error: ConfigError | DependenciesUnreachableError): never {
  if (logger && error instanceof DependenciesUnreachableError) {
    tryLog(() => logger.fatal({ unreachable: error.unreachable }, error.message));
  }
  process.stderr.write(`${error.message.replaceAll(/^/gm, 'wallet: ')}\n`);
  process.exit(1);
}

function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) failToStart(null, error);
    throw error;
  }
}

function run(
  name: string,
  needs: readonly Dependency[],
  action: (config: Config, logger: Logger) => Promise<Closable[] | void>,
) {
  return async () => {
    const config = loadConfigOrExit();
    const logger = createLogger(config, name);
    // Started by `wallet start`: if that process dies (even by SIGKILL, even while this one is
    // still starting), stop rather than linger unsupervised.
    let close: (() => void) | null = null;
    if (process.env[SUPERVISED_ENV] && process.send) {
      const onParentGone = () => (close ? close() : process.exit(1));
      if (process.connected) process.once('disconnect', onParentGone);
      else onParentGone();
    }
    try {
      await waitForDependencies(config, needs, config.STARTUP_TIMEOUT_MS);
      const parts = await action(config, logger);
      if (parts) close = closeGracefully(parts, config, logger);
    } catch (error) {
      if (error instanceof DependenciesUnreachableError) failToStart(logger, error);
      logger.fatal({ err: error }, `${name} failed`);
      process.exit(1);
    }
  };
}

const program = new Command()
  .name('wallet')
  .description('Queue-backed wallet transaction service')
  .showHelpAfterError();

program
  .command('db')
  .description('manage the database named by DATABASE_URL')
  .option('--initdb', 'create the database if missing and apply all migrations')
  .option('--dropdb', 'drop the database and everything in it')
  .argument('[action]', '"migrate" applies migrations not yet applied')
  .action(async (action: string | undefined, options: { initdb?: boolean; dropdb?: boolean }) => {
    if (!options.initdb && !options.dropdb && action !== 'migrate') {
      program.error('db: give --initdb, --dropdb or migrate');
    }
    await run('db', ['Postgres'], async (config, logger) => {
      if (options.dropdb) {
        await dropDatabase(config.DATABASE_URL);
        logger.info('database dropped');
      }
      if (options.initdb) await prepareDatabase(config, logger);
      if (action === 'migrate') {
        const result = await migrate(config.DATABASE_URL, undefined, migrationSettings(config));
        logger.info({ applied: result.applied }, 'migrations applied');
      }
    })();
  });

program
  .command('api')
  .description('serve the HTTP API')
  .option('--migrate', 'create and migrate the database first')
  .action((options: { migrate?: boolean }) =>
    run('api', BOTH, async (config, logger) => {
      if (options.migrate) await prepareDatabase(config, logger);
      // Under `start`, the parent settles the first key and prints the banner.
      const alone = !process.env[SUPERVISED_ENV];
      const keys = alone ? await settleFirstKey(config, logger, onTerminal()) : null;
      const api = await startApi(config, logger);
      tellSupervisorReady('api', api.port);
      if (keys && onTerminal()) {
        process.stdout.write(formatBanner({ apiUrl: baseUrl(config.HOST, api.port), workerOpsUrl: null, keys }));
      }
      return [api];
    })(),
  );

program
  .command('worker')
  .description('apply pending transactions from the queue')
  .action(
    run('worker', BOTH, async (config, logger) => {
      const worker = await startWorker(config, logger);
      tellSupervisorReady('worker', worker.opsPort);
      return [worker];
    }),
  );

program
  .command('start')
  .description('migrate, then the API and one worker as two processes: the single-machine setup')
  .action(
    run('wallet', BOTH, async (config, logger) => {
      await prepareDatabase(config, logger);
      const keys = await settleFirstKey(config, logger, onTerminal());
      const exitCode = await runTogether(['worker', 'api'], logger, config.SHUTDOWN_TIMEOUT_MS, (ports) => {
        if (!onTerminal()) return;
        const apiUrl = baseUrl(config.HOST, ports.api ?? config.PORT);
        const workerOpsUrl = baseUrl(config.HOST, ports.worker ?? config.METRICS_PORT);
        process.stdout.write(formatBanner({ apiUrl, workerOpsUrl, keys }));
      });
      process.exit(exitCode);
    }),
  );

program
  .command('audit')
  .description('check every rule of the ledger over the database (read-only); exit 1 on any violation')
  .option('--wallet <id>', 'only this wallet')
  .option('--settled', 'also require that nothing is pending (after a drain)')
  .option('--json', 'print the report as JSON')
  .action(async (options: { wallet?: string; settled?: boolean; json?: boolean }) => {
    const walletId = options.wallet === undefined ? undefined : Number(options.wallet);
    if (walletId !== undefined && !(Number.isSafeInteger(walletId) && walletId > 0)) {
      program.error(`audit: --wallet must be a wallet id (an integer from 1), got "${options.wallet}"`);
    }
    await run('audit', ['Postgres'], async (config) => {
      const pool = await createDatabasePool({ DATABASE_URL: config.DATABASE_URL, DB_POOL_SIZE: 1 }, 'wallet-audit');
      try {
        const report = await auditLedger(pool, { walletId, settled: options.settled === true });
        if (options.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        } else {
          for (const violation of report.violations) process.stdout.write(`${describeViolation(violation)}\n`);
          const unverifiable =
            report.unverifiableRejections > 0
              ? `; ${report.unverifiableRejections} rejections from before their decisions were recorded cannot be replayed`
              : '';
          process.stdout.write(
            `${report.wallets} wallets, ${report.transactions} transactions, ${report.violations.length} violations${unverifiable}\n`,
          );
        }
        process.exitCode = report.violations.length > 0 ? 1 : 0;
      } finally {
        await pool.end();
      }
    })();
  });

program.addCommand(apiKeyCommand());

await program.parseAsync();
