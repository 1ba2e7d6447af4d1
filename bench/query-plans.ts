/**
 * Query plans of the lookups and searches on a realistic volume: 10,000 wallets and 1,000,000
 * transactions with labels, written as the service writes them (ids computed from the key, the
 * journal rows of their reservations, some pending work with its markers). Prints EXPLAIN
 * (ANALYZE, BUFFERS) of each query the API runs, as markdown, for docs/queries.md.
 *
 *   npx tsx bench/query-plans.ts [--transactions 1000000] [--keep]
 *
 * The SQL below mirrors src/shared/transactions/transaction-repository.ts and
 * src/shared/wallets/wallet-repository.ts (the service runs them with bind parameters, as here).
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createDatabaseIfMissing, dropDatabase, migrate } from '../src/shared/infra/migrate.js';

const { values } = parseArgs({
  options: {
    transactions: { type: 'string', default: '1000000' },
    wallets: { type: 'string', default: '10000' },
    keep: { type: 'boolean', default: false },
  },
});
const transactionCount = Number(values.transactions);
const walletCount = Number(values.wallets);
const databaseUrl = `${process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432'}/wallet_query_plans`;

async function load(client: pg.Client): Promise<void> {
  await client.query(
    `INSERT INTO wallets (external_id, labels, balance)
     SELECT 'user-' || i, jsonb_build_object('tier', (ARRAY['gold','silver','bronze'])[1 + i % 3], 'region', 'r' || (i % 50)), 1000
     FROM generate_series(1, $1) AS i`,
    [walletCount],
  );
  // Applied history (every 20th rejected), no stored id: it is computed from the key.
  await client.query(
    `INSERT INTO transactions (wallet_id, amount, fingerprint, labels, status, refno, oldbalance, newbalance, reason,
                               after_refno, created, finalized)
     SELECT 1 + (i % $2), 1 + (i % 50), 'fp-' || i,
            jsonb_build_object('kind', (ARRAY['prize','withdraw','bonus','refund'])[1 + i % 4], 'campaign', 'c' || (i % 1000)),
            CASE WHEN i % 20 = 0 THEN 'rejected' ELSE 'applied' END,
            CASE WHEN i % 20 = 0 THEN NULL ELSE i END,
            0,
            CASE WHEN i % 20 = 0 THEN NULL ELSE 1 + (i % 50) END,
            CASE WHEN i % 20 = 0 THEN 'insufficient_funds' END,
            CASE WHEN i % 20 = 0 THEN 0 END,
            now() - make_interval(secs => $1 - i), now() - make_interval(secs => $1 - i)
     FROM generate_series(1, $1) AS i`,
    [transactionCount, walletCount],
  );
  // The journal rows their reservations would have written, 32 transactions each.
  await client.query(`
    INSERT INTO outbox (kind, wallet_ids, seqs, labels, created)
    SELECT 'transactions_reserved', array_agg(wallet_id ORDER BY seq), array_agg(seq ORDER BY seq),
           jsonb_agg(DISTINCT labels), min(created)
    FROM transactions GROUP BY seq / 32 ORDER BY seq / 32`);
  // A little pending work, as a busy moment leaves it: 200 reserved transactions and their markers.
  await client.query(
    `WITH reserved AS (
       INSERT INTO transactions (wallet_id, amount, fingerprint, labels)
       SELECT 1 + (i * 37 % $1), 5, 'pending-' || i, '{"kind": "prize"}' FROM generate_series(1, 200) AS i
       RETURNING wallet_id, seq
     )
     INSERT INTO pending_reservations (wallet_id, first_seq, last_seq)
     SELECT wallet_id, min(seq), max(seq) FROM reserved GROUP BY wallet_id`,
    [walletCount],
  );
  await client.query('VACUUM ANALYZE');
}

const columns = `coalesce(id, transaction_id(wallet_id, seq)) AS id, wallet_id, amount::text, fingerprint, labels,
  description, status, reason, refno, oldbalance::text, newbalance::text, voids, voided_by, created`;

/** The journal listing (transaction-repository.ts findJournalTransactions), with or without labels and a cursor. */
function journal(labelled: boolean, later: boolean): string {
  const cursor = labelled ? ['$3', '$4'] : ['$1', '$2'];
  return `SELECT ${columns}, seq, c.xid::text || '.' || c.row || '.' || c.ordinal AS position
    FROM (
      SELECT o.xid, o.id AS row, x.ordinal, x.wallet_id, x.seq
      FROM outbox o CROSS JOIN LATERAL unnest(o.wallet_ids, o.seqs) WITH ORDINALITY AS x (wallet_id, seq, ordinal)
      WHERE o.kind IN ('transactions_reserved', 'journal')
        ${labelled ? 'AND o.labels IS NOT NULL AND o.labels @> $1' : ''}
        ${later ? `AND (o.xid, o.id) <= (${cursor[0]}::xid8, ${cursor[1]})` : ''}
    ) c
    JOIN transactions USING (wallet_id, seq)
    ${labelled ? "WHERE labels @> $2 AND labels <> '{}'::jsonb" : ''}
    ORDER BY c.xid DESC, c.row DESC, c.ordinal DESC LIMIT 51`;
}

async function main(): Promise<void> {
  await dropDatabase(databaseUrl);
  await createDatabaseIfMissing(databaseUrl);
  await migrate(databaseUrl);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = Date.now();
    await load(client);
    console.log(
      `<!-- ${walletCount} wallets, ${transactionCount} transactions, loaded in ${Math.round((Date.now() - started) / 1000)} s -->\n`,
    );
    const walletId = 4242;
    const middleSeq = Math.floor(transactionCount / 2);
    const middle = (
      await client.query<{ xid: string; id: string }>(
        'SELECT xid::text AS xid, id::text AS id FROM outbox ORDER BY xid, id OFFSET (SELECT count(*) / 2 FROM outbox) LIMIT 1',
      )
    ).rows[0]!;
    const queries: [string, string, unknown[]][] = [
      [
        'A wallet’s transactions, first page',
        `SELECT ${columns}, seq FROM transactions WHERE wallet_id = $1 ORDER BY seq DESC LIMIT 51`,
        [walletId],
      ],
      [
        'A wallet’s transactions, a later page (cursor)',
        `SELECT ${columns}, seq FROM transactions WHERE wallet_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT 51`,
        [walletId, middleSeq],
      ],
      [
        'A wallet’s transactions by status',
        `SELECT ${columns}, seq FROM transactions WHERE wallet_id = $1 AND status = $2 ORDER BY seq DESC LIMIT 51`,
        [walletId, 'rejected'],
      ],
      [
        'A wallet’s transactions by label',
        `SELECT ${columns}, seq FROM transactions WHERE wallet_id = $1 AND labels @> $2 AND labels <> '{}'::jsonb
         ORDER BY seq DESC LIMIT 51`,
        [walletId, '{"kind":"withdraw"}'],
      ],
      ['All wallets’ transactions, first page (the journal)', journal(false, false), []],
      ['All wallets’ transactions, a later page', journal(false, true), [middle.xid, middle.id]],
      ['Transactions by a common label (1 in 4)', journal(true, false), ['[{"kind":"bonus"}]', '{"kind":"bonus"}']],
      [
        'Transactions by a rare label (1 in 1,000), two labels',
        journal(true, false),
        ['[{"campaign":"c42","kind":"bonus"}]', '{"campaign":"c42","kind":"bonus"}'],
      ],
      [
        'Transactions by a rare label, a later page',
        journal(true, true),
        ['[{"campaign":"c42"}]', '{"campaign":"c42"}', middle.xid, middle.id],
      ],
      [
        'Transactions by a label no transaction has',
        journal(true, false),
        ['[{"campaign":"c4242"}]', '{"campaign":"c4242"}'],
      ],
      [
        'Pending transactions of all wallets (through the markers)',
        `SELECT ${columns}, seq FROM transactions
         WHERE (wallet_id, seq) IN (
           SELECT t.wallet_id, t.seq FROM pending_reservations m
           JOIN transactions t ON t.wallet_id = m.wallet_id AND t.seq BETWEEN m.first_seq AND m.last_seq
           WHERE t.status = 'pending')
         ORDER BY seq DESC LIMIT 51`,
        [],
      ],
      [
        'A transaction by id (computed from its key)',
        `SELECT ${columns} FROM transactions WHERE wallet_id = $1 AND seq = $2 AND id IS NULL`,
        [walletId, walletId + walletCount * 7],
      ],
      [
        'A wallet’s latest applied transaction',
        `SELECT ${columns} FROM transactions t
         WHERE t.wallet_id = $1 AND t.refno = (SELECT w.last_refno FROM wallets w WHERE w.id = $1)
         ORDER BY t.seq DESC LIMIT 1`,
        [walletId],
      ],
      [
        'Wallets by two labels',
        `SELECT id, external_id, labels, balance::text, created FROM wallets WHERE labels @> $1 ORDER BY id DESC LIMIT 51`,
        ['{"tier":"gold","region":"r7"}'],
      ],
      ['Transaction by fingerprint', `SELECT ${columns} FROM transactions WHERE fingerprint = $1`, ['fp-777777']],
      [
        'Wallet by externalId',
        `SELECT id, external_id, labels, balance::text, created FROM wallets WHERE external_id = $1`,
        ['user-777'],
      ],
    ];
    for (const [title, text, params] of queries) {
      await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, params); // warm the cache once
      const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, params);
      console.log(
        `### ${title}\n\n\`\`\`sql\n${text.replace(/\s+/g, ' ')}\n\`\`\`\n\n\`\`\`\n${plan.rows.map((row) => row['QUERY PLAN']).join('\n')}\n\`\`\`\n`,
      );
    }
  } finally {
    await client.end();
    if (!values.keep) await dropDatabase(databaseUrl);
  }
}

await main();
