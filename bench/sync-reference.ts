/**
 * The synchronous design this service replaces, as a yardstick for `npm run bench` (not part of
 * the product): each POST is one database transaction that reads the wallet (row-locked), checks
 * the balance, writes it and inserts the applied row, then answers 201; an overdraft stores
 * nothing and answers 422. A transfer is one database transaction too: both wallets locked in id
 * order, the source's balance checked, both rows written (fingerprints <fp>:debit and <fp>:credit),
 * both balances updated. Its own tables, the original's design (bench/reference-schema.sql), in
 * a database of its own; same Postgres and connection count (DB_POOL_SIZE) as the service; no queue.
 *
 *   node --import tsx bench/sync-reference.ts     (PORT, DATABASE_URL, DB_POOL_SIZE from the environment)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import pg from 'pg';
import { unitsToDecimal, decimalToUnits } from '../src/shared/ledger/money.js';

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.DB_POOL_SIZE ?? 20),
});
// NUMERIC as text: exact money, as in the service.
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (value) => value);

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
}

async function createWallet(body: Record<string, unknown>): Promise<[number, unknown]> {
  const result = await pool.query<{ id: string }>(
    'INSERT INTO wallets (external_id, labels) VALUES ($1, $2) RETURNING id',
    [body.externalId, JSON.stringify(body.labels ?? {})],
  );
  return [201, { id: Number(result.rows[0]!.id) }];
}

/**
 * One database transaction per request: committed when `work` answers 201, rolled back on any
 * other answer; a taken fingerprint (unique violation) answers 409.
 */
async function inOneTransaction(
  work: (client: pg.PoolClient) => Promise<[number, unknown]>,
): Promise<[number, unknown]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const answer = await work(client);
    await client.query(answer[0] === 201 ? 'COMMIT' : 'ROLLBACK');
    return answer;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if ((error as { code?: string }).code === '23505') return [409, { detail: 'fingerprint used' }];
    throw error;
  } finally {
    client.release();
  }
}

async function postTransaction(walletId: number, body: Record<string, unknown>): Promise<[number, unknown]> {
  const amount = decimalToUnits(String(body.amount));
  if (amount === null) return [400, { detail: 'bad amount' }];
  return inOneTransaction(async (client) => {
    const wallet = await client.query<{ balance: string; last_refno: string }>(
      'SELECT balance, last_refno FROM wallets WHERE id = $1 FOR UPDATE',
      [walletId],
    );
    const row = wallet.rows[0];
    if (!row) return [404, { detail: 'no such wallet' }];
    const oldBalance = decimalToUnits(row.balance)!;
    const newBalance = oldBalance + amount;
    const common = [walletId, unitsToDecimal(amount), body.fingerprint, JSON.stringify(body.labels ?? {})];
    if (newBalance < 0n) return [422, { status: 'rejected', reason: 'insufficient_funds' }];
    const refno = Number(row.last_refno) + 1;
    await client.query('UPDATE wallets SET balance = $2, last_refno = $3, version = version + 1 WHERE id = $1', [
      walletId,
      unitsToDecimal(newBalance),
      refno,
    ]);
    const inserted = await client.query<{ id: string }>(
      `INSERT INTO transactions (wallet_id, amount, fingerprint, labels, refno, oldbalance, newbalance)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
      [...common, refno, unitsToDecimal(oldBalance), unitsToDecimal(newBalance)],
    );
    return [201, { id: inserted.rows[0]!.id, refno, newbalance: unitsToDecimal(newBalance) }];
  });
}

async function postTransfer(body: Record<string, unknown>): Promise<[number, unknown]> {
  const amount = decimalToUnits(String(body.amount));
  const [from, to] = [Number(body.from), Number(body.to)];
  if (amount === null || amount <= 0n || from === to) return [400, { detail: 'bad transfer' }];
  return inOneTransaction(async (client) => {
    const locked = await client.query<{ id: string; balance: string; last_refno: string }>(
      'SELECT id, balance, last_refno FROM wallets WHERE id = ANY($1) ORDER BY id FOR UPDATE',
      [[from, to]],
    );
    const wallets = new Map(locked.rows.map((row) => [Number(row.id), row]));
    const [source, destination] = [wallets.get(from), wallets.get(to)];
    if (!source || !destination) return [404, { detail: 'no such wallet' }];
    const sourceBalance = decimalToUnits(source.balance)!;
    if (sourceBalance - amount < 0n) return [422, { status: 'rejected', reason: 'insufficient_funds' }];
    const legs = [
      { walletId: from, row: source, amount: -amount, suffix: 'debit' },
      { walletId: to, row: destination, amount, suffix: 'credit' },
    ];
    for (const leg of legs) {
      const oldBalance = decimalToUnits(leg.row.balance)!;
      const newBalance = oldBalance + leg.amount;
      const refno = Number(leg.row.last_refno) + 1;
      await client.query('UPDATE wallets SET balance = $2, last_refno = $3, version = version + 1 WHERE id = $1', [
        leg.walletId,
        unitsToDecimal(newBalance),
        refno,
      ]);
      await client.query(
        `INSERT INTO transactions (wallet_id, amount, fingerprint, labels, refno, oldbalance, newbalance)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [
          leg.walletId,
          unitsToDecimal(leg.amount),
          `${String(body.fingerprint)}:${leg.suffix}`,
          JSON.stringify(body.labels ?? {}),
          refno,
          unitsToDecimal(oldBalance),
          unitsToDecimal(newBalance),
        ],
      );
    }
    return [201, { status: 'completed' }];
  });
}

const server = createServer((req, res) => {
  const path = (req.url ?? '').split('?')[0] ?? '';
  const transaction = /^\/wallets\/(\d+)\/transactions$/.exec(path);
  const answer = async (): Promise<[number, unknown]> => {
    if (req.method === 'POST' && path === '/wallets') return createWallet(await readJson(req));
    if (req.method === 'POST' && transaction) return postTransaction(Number(transaction[1]), await readJson(req));
    if (req.method === 'POST' && path === '/transfers') return postTransfer(await readJson(req));
    return [404, { detail: 'not found' }];
  };
  answer().then(
    ([status, body]) => send(res, status, body),
    (error: unknown) => send(res, 500, { detail: String(error) }),
  );
});

server.listen(Number(process.env.PORT ?? 3100), process.env.HOST ?? '127.0.0.1', () => {
  console.log(JSON.stringify({ level: 30, msg: 'reference listening', port: Number(process.env.PORT ?? 3100) }));
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => server.close(() => void pool.end().then(() => process.exit(0))));
}
