/**
 * Query plans of the lookups and searches on a realistic volume: 10,000 wallets and 1,000,000
 * transactions with labels. Prints EXPLAIN (ANALYZE, BUFFERS) of each query the API runs, as
 * markdown, for docs/queries.md.
 *
 *   npx tsx bench/query-plans.ts [--transactions 1000000] [--keep]
 *
 * The SQL below mirrors src/shared/transactions/transaction-repository.ts and
 * src/shared/wallets/wallet-repository.ts.
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

async function main(): Promise<void> {
  await dropDatabase(databaseUrl);
  await createDatabaseIfMissing(databaseUrl);
  await migrate(databaseUrl);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = Date.now();
    await client.query(
      `INSERT INTO wallets (external_id, labels, balance)
       SELECT 'user-' || i, jsonb_build_object('tier', (ARRAY['gold','silver','bronze'])[1 + i % 3], 'region', 'r' || (i % 50)), 1000
       FROM generate_series(1, $1) AS i`,
      [walletCount],
    );
    await client.query(
      `INSERT INTO transactions (wallet_id, amount, fingerprint, labels, status, refno, oldbalance, newbalance, reason, created)
       SELECT 1 + (i % $2), 1 + (i % 50), 'fp-' || i,
              jsonb_build_object('kind', (ARRAY['prize','withdraw','bonus','refund'])[1 + i % 4], 'campaign', 'c' || (i % 1000)),
              CASE WHEN i % 20 = 0 THEN 'rejected' ELSE 'applied' END,
              CASE WHEN i % 20 = 0 THEN NULL ELSE i END,
              CASE WHEN i % 20 = 0 THEN NULL ELSE 0 END,
              CASE WHEN i % 20 = 0 THEN NULL ELSE 1 + (i % 50) END,
              CASE WHEN i % 20 = 0 THEN 'insufficient_funds' END,
              now() - make_interval(secs => $1 - i)
       FROM generate_series(1, $1) AS i`,
      [transactionCount, walletCount],
    );
    await client.query('VACUUM ANALYZE wallets');
    await client.query('VACUUM ANALYZE transactions');
    console.log(
      `<!-- ${walletCount} wallets, ${transactionCount} transactions, loaded in ${Math.round((Date.now() - started) / 1000)} s -->\n`,
    );

    const walletId = 4242;
    const middleSeq = Math.floor(transactionCount / 2);
    const columns = `id, wallet_id, amount::text, fingerprint, labels, description, status, reason, refno,
      oldbalance::text, newbalance::text, voids, voided_by, created`;
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
        `SELECT ${columns}, seq FROM transactions WHERE wallet_id = $1 AND labels @> $2 ORDER BY seq DESC LIMIT 51`,
        [walletId, '{"kind":"withdraw"}'],
      ],
      [
        'Transactions by a common label (1 in 4)',
        `SELECT ${columns}, seq FROM transactions WHERE labels @> $1 ORDER BY seq DESC LIMIT 51`,
        ['{"kind":"bonus"}'],
      ],
      [
        'Transactions by a rare label (1 in 1,000), two labels',
        `SELECT ${columns}, seq FROM transactions WHERE labels @> $1 ORDER BY seq DESC LIMIT 51`,
        ['{"campaign":"c42","kind":"bonus"}'],
      ],
      [
        'Transactions by a rare label, a later page',
        `SELECT ${columns}, seq FROM transactions WHERE labels @> $1 AND seq < $2 ORDER BY seq DESC LIMIT 51`,
        ['{"campaign":"c42"}', middleSeq],
      ],
      [
        'Transactions by a label no transaction has',
        `SELECT ${columns}, seq FROM transactions WHERE labels @> $1 ORDER BY seq DESC LIMIT 51`,
        ['{"campaign":"c4242"}'],
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
