import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { dropDatabase } from '../src/shared/infra/migrate.js';

/**
 * The ceiling: what Postgres alone sustains for the service's minimal write, one commit per
 * transaction (a balance update returning the old and new balance, then a ledger insert).
 */
export interface CeilingResult {
  scenario: 'uniform' | 'hot';
  tps: number;
  latencyAverageMs: number | null;
  command: string;
}

const SCHEMA = `
  CREATE TABLE wallets (id bigint PRIMARY KEY, balance numeric(17, 2) NOT NULL, version bigint NOT NULL);
  CREATE TABLE transactions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    wallet_id bigint,
    amount numeric(14, 2),
    refno bigint,
    oldbalance numeric(17, 2),
    newbalance numeric(17, 2),
    created timestamptz DEFAULT now()
  );
  INSERT INTO wallets (id, balance, version) SELECT g, 0, 0 FROM generate_series(1, 1000) AS g;`;

function script(walletChoice: string): string {
  return `${walletChoice}
BEGIN;
UPDATE wallets SET balance = balance + 1, version = version + 1 WHERE id = :wid RETURNING balance - 1 AS oldbalance, balance AS newbalance, version AS refno \\gset
INSERT INTO transactions (wallet_id, amount, refno, oldbalance, newbalance) VALUES (:wid, 1, :refno, :oldbalance, :newbalance);
COMMIT;
`;
}

async function prepare(url: string): Promise<void> {
  await dropDatabase(url);
  const target = new URL(url);
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: maintenance.toString() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(decodeURIComponent(target.pathname.slice(1)))}`);
  } finally {
    await admin.end();
  }
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    await db.query(SCHEMA);
    await db.query('VACUUM ANALYZE wallets');
  } finally {
    await db.end();
  }
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`${command} exited with ${String(code)}:\n${output}`)),
    );
  });
}

export function parsePgbenchOutput(output: string): { tps: number; latencyAverageMs: number | null } {
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(output);
  if (!tps) throw new Error(`no "tps = N (without initial connection time)" in pgbench output:\n${output}`);
  const latency = /latency average = ([\d.]+) ms/.exec(output);
  return { tps: Number(tps[1]), latencyAverageMs: latency ? Number(latency[1]) : null };
}

/** Runs the uniform and the hot ceiling in a database of their own, dropped afterwards unless `keep`. */
export async function measureCeilings(
  url: string,
  options: { seconds: number; clients: number; keep: boolean },
): Promise<CeilingResult[]> {
  const parsed = new URL(url);
  const database = decodeURIComponent(parsed.pathname.slice(1));
  const dir = await mkdtemp(path.join(tmpdir(), 'wallet-pgbench-'));
  const results: CeilingResult[] = [];
  try {
    await prepare(url);
    const scenarios = [
      { scenario: 'uniform', choice: '\\set wid random(1, 1000)' },
      { scenario: 'hot', choice: '\\set wid 1' },
    ] as const;
    for (const { scenario, choice } of scenarios) {
      const file = path.join(dir, `${scenario}.sql`);
      await writeFile(file, script(choice));
      const args = [
        '-n',
        '-c',
        String(options.clients),
        '-j',
        '2',
        '-T',
        String(options.seconds),
        '-f',
        file,
        '-h',
        parsed.hostname,
        '-p',
        parsed.port || '5432',
        '-U',
        decodeURIComponent(parsed.username) || 'postgres',
        database,
      ];
      const output = await run('pgbench', args);
      results.push({ scenario, ...parsePgbenchOutput(output), command: `pgbench ${args.join(' ')}` });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (!options.keep) await dropDatabase(url);
  }
  return results;
}
