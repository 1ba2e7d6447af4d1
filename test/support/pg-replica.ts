import { execFile } from 'node:child_process';
import { chown, mkdtemp, rm, appendFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * A Postgres primary and a streaming replica of it, of this test's own, from the machine's
 * Postgres binaries: initdb into a temp dir, `pg_basebackup -R` (streaming, standby.signal and
 * primary_conninfo written), each on a free local port; run as the `postgres` OS user when the
 * test runs as root (Postgres refuses root). No fsync: nothing here needs to survive a crash.
 */
const run = promisify(execFile);
const BIN = process.env.TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PrimaryWithReplica {
  primaryUrl: string;
  replicaUrl: string;
  /** Stops both servers and removes their directory. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const asRoot = process.getuid?.() === 0;

/** Runs a Postgres binary, as the postgres user when we are root. */
function pg(binary: string, args: string[]) {
  const file = path.join(BIN, binary);
  return asRoot ? run('runuser', ['-u', 'postgres', '--', file, ...args]) : run(file, args);
}

export async function startPrimaryWithReplica(): Promise<PrimaryWithReplica> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wallet-pg-replica-'));
  if (asRoot) await chown(dir, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), 0);
  const primary = path.join(dir, 'primary');
  const replica = path.join(dir, 'replica');
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const options = (port: number) => `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const started: string[] = [];
  const stop = async () => {
    for (const data of started.reverse())
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await pg('initdb', ['-D', primary, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    await appendFile(path.join(primary, 'pg_hba.conf'), 'host replication all 127.0.0.1/32 trust\n');
    await pg('pg_ctl', ['-D', primary, '-o', options(primaryPort), '-l', path.join(dir, 'primary.log'), '-w', 'start']);
    started.push(primary);
    await pg('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primaryPort),
      '-U',
      'postgres',
      '-D',
      replica,
      '-R',
      '-X',
      'stream',
    ]);
    await pg('pg_ctl', ['-D', replica, '-o', options(replicaPort), '-l', path.join(dir, 'replica.log'), '-w', 'start']);
    started.push(replica);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    primaryUrl: `postgres://postgres@127.0.0.1:${primaryPort}/postgres`,
    replicaUrl: `postgres://postgres@127.0.0.1:${replicaPort}/postgres`,
    stop,
  };
}
