#!/usr/bin/env node
import { Command } from 'commander';
import { startApi } from './api/server.js';
import { apiKeyCommand } from './apikey-cli.js';
import { loadConfig, type Config } from './shared/infra/config.js';
import { createLogger, type Logger } from './shared/infra/logger.js';
import { createDatabaseIfMissing, dropDatabase, migrate } from './shared/infra/migrate.js';
import { shutdownTracing } from './shared/telemetry/tracing.js';
import { startWorker } from './worker/worker.js';

interface Closable {
  close(): Promise<void>;
}

async function prepareDatabase(config: Config, logger: Logger): Promise<void> {
  const created = await createDatabaseIfMissing(config.DATABASE_URL);
  const result = await migrate(config.DATABASE_URL);
  logger.info({ created, applied: result.applied, alreadyApplied: result.alreadyApplied.length }, 'database ready');
}

/** Runs until SIGTERM or SIGINT, then closes each part in reverse order, within the shutdown timeout. */
function closeOnSignals(parts: Closable[], config: Config, logger: Logger): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // Exit even if logging fails (a closed stdout pipe throws EPIPE).
    const exit = (code: number, log: () => void) => {
      try {
        log();
      } finally {
        process.exit(code);
      }
    };
    const timer = setTimeout(() => exit(1, () => logger.error('shutdown timed out')), config.SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    (async () => {
      for (const part of [...parts].reverse()) await part.close();
      await shutdownTracing(); // flush the last spans (a no-op when tracing is off)
    })()
      .then(() => exit(0, () => undefined))
      .catch((error: unknown) => exit(1, () => logger.error({ err: error }, 'shutdown failed')));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function run(name: string, action: (config: Config, logger: Logger) => Promise<Closable[] | void>) {
  return async () => {
    const config = loadConfig();
    const logger = createLogger(config, name);
    try {
      const parts = await action(config, logger);
      if (parts) closeOnSignals(parts, config, logger);
    } catch (error) {
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
    await run('db', async (config, logger) => {
      if (options.dropdb) {
        await dropDatabase(config.DATABASE_URL);
        logger.info('database dropped');
      }
      if (options.initdb) await prepareDatabase(config, logger);
      if (action === 'migrate') {
        const result = await migrate(config.DATABASE_URL);
        logger.info({ applied: result.applied }, 'migrations applied');
      }
    })();
  });

program
  .command('api')
  .description('serve the HTTP API')
  .option('--migrate', 'create and migrate the database first')
  .action((options: { migrate?: boolean }) =>
    run('api', async (config, logger) => {
      if (options.migrate) await prepareDatabase(config, logger);
      return [await startApi(config, logger)];
    })(),
  );

program
  .command('worker')
  .description('apply pending transactions from the queue')
  .action(run('worker', async (config, logger) => [await startWorker(config, logger)]));

program
  .command('start')
  .description('API and one worker in one process, migrating first: the single-machine setup')
  .action(
    run('wallet', async (config, logger) => {
      await prepareDatabase(config, logger);
      const worker = await startWorker(config, logger);
      return [worker, await startApi(config, logger)];
    }),
  );

program.addCommand(apiKeyCommand());

await program.parseAsync();
