/**
 * Query plans of the lookups and searches on a realistic volume: 10,000 wallets and 1,000,000
 * transactions with labels, written as the service writes them (ids computed from the key, the
 * journal rows of their reservations, some pending work with its markers). Prints EXPLAIN
 * (ANALYZE, BUFFERS) of each query the API runs, as markdown, for docs/queries.md.
 *
 *   npx tsx bench/query-plans.ts [--transactions 1000000] [--keep]
 *
 * The statements are the repositories' own (src/shared/transactions/transaction-repository.ts,
 * src/shared/wallets/wallet-repository.ts), captured as they would be sent, bind parameters and all.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { CommonQueryMethods } from 'slonik';
import { createDatabaseIfMissing, dropDatabase, migrate } from '../src/shared/infra/migrate.js';
import {
  findJournalTransactions,
  findLatestAppliedTransaction,
  findPendingTransactions,
  findTransactionByFingerprint,
  findWalletTransaction,
  findWalletTransactions,
} from '../src/shared/transactions/transaction-repository.js';
import { findWalletByExternalId, findWalletsByLabels } from '../src/shared/wallets/wallet-repository.js';

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
  // Each wallet's last refno, as the apply path keeps it (the latest-applied lookup starts there).
  await client.query(`
    UPDATE wallets w SET last_refno = t.last_refno
    FROM (SELECT wallet_id, max(refno) AS last_refno FROM transactions WHERE refno IS NOT NULL GROUP BY wallet_id) t
    WHERE w.id = t.wallet_id`);
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

/**
 * The statements a repository function sends, captured instead of run: each answers no row, so a
 * function that reads on after a short result (a listing's scan edge) shows that statement too.
 */
async function statementsOf(
  run: (db: CommonQueryMethods) => Promise<unknown>,
): Promise<{ sql: string; values: unknown[] }[]> {
  const captured: { sql: string; values: unknown[] }[] = [];
  const capture = (token: { sql: string; values: readonly unknown[] }, answer: unknown) => {
    // slonik names its placeholders $slonik_N until it sends them; Postgres takes $N.
    captured.push({ sql: token.sql.replace(/\$slonik_(\d+)/g, '$$$1'), values: [...token.values] });
    return Promise.resolve(answer);
  };
  const db = {
    any: (token: never) => capture(token, []),
    maybeOne: (token: never) => capture(token, null),
    one: (token: never) => capture(token, { scanned: 0, oldest: null }),
  };
  await run(db as unknown as CommonQueryMethods);
  return captured;
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
    const middleRow = (
      await client.query<{ xid: string; id: string }>(
        'SELECT xid::text AS xid, id::text AS id FROM outbox ORDER BY xid, id OFFSET (SELECT count(*) / 2 FROM outbox) LIMIT 1',
      )
    ).rows[0]!;
    const middle = { xid: middleRow.xid, row: Number(middleRow.id), ordinal: 1 };
    const someId = (
      await client.query<{ id: string }>('SELECT transaction_id($1, $2)::text AS id', [
        walletId,
        walletId + walletCount * 7,
      ])
    ).rows[0]!.id;
    const noLabels = {};
    const queries: [string, (db: CommonQueryMethods) => Promise<unknown>][] = [
      [
        'A wallet’s transactions, first page',
        (db) => findWalletTransactions(db, walletId, { labels: noLabels, limit: 51, beforeSeq: null }),
      ],
      [
        'A wallet’s transactions, a later page (cursor)',
        (db) => findWalletTransactions(db, walletId, { labels: noLabels, limit: 51, beforeSeq: middleSeq }),
      ],
      [
        'A wallet’s transactions by status (and, for a short page, where its scan stopped)',
        (db) =>
          findWalletTransactions(db, walletId, { status: 'rejected', labels: noLabels, limit: 51, beforeSeq: null }),
      ],
      [
        'A wallet’s transactions by label',
        (db) => findWalletTransactions(db, walletId, { labels: { kind: 'withdraw' }, limit: 51, beforeSeq: null }),
      ],
      [
        'All wallets’ transactions, first page (the journal)',
        (db) => findJournalTransactions(db, { labels: noLabels, limit: 51, before: null }),
      ],
      [
        'All wallets’ transactions, a later page',
        (db) => findJournalTransactions(db, { labels: noLabels, limit: 51, before: middle }),
      ],
      [
        'All wallets’ transactions by status (and where its scan stopped)',
        (db) => findJournalTransactions(db, { status: 'rejected', labels: noLabels, limit: 51, before: null }),
      ],
      [
        'Transactions by a common label (1 in 4)',
        (db) => findJournalTransactions(db, { labels: { kind: 'bonus' }, limit: 51, before: null }),
      ],
      [
        'Transactions by a rare label (1 in 1,000), two labels',
        (db) => findJournalTransactions(db, { labels: { campaign: 'c42', kind: 'bonus' }, limit: 51, before: null }),
      ],
      [
        'Transactions by a rare label, a later page',
        (db) => findJournalTransactions(db, { labels: { campaign: 'c42' }, limit: 51, before: middle }),
      ],
      [
        'Transactions by a label no transaction has',
        (db) => findJournalTransactions(db, { labels: { campaign: 'c4242' }, limit: 51, before: null }),
      ],
      [
        'Pending transactions of all wallets (through the markers)',
        (db) => findPendingTransactions(db, { labels: noLabels, limit: 51, beforeSeq: null }),
      ],
      ['A transaction by id (computed from its key)', (db) => findWalletTransaction(db, walletId, someId)],
      ['A wallet’s latest applied transaction', (db) => findLatestAppliedTransaction(db, walletId)],
      [
        'Wallets by two labels',
        (db) => findWalletsByLabels(db, { labels: { tier: 'gold', region: 'r7' }, beforeId: null, limit: 51 }),
      ],
      ['Transaction by fingerprint', (db) => findTransactionByFingerprint(db, 'fp-777777')],
      ['Wallet by externalId', (db) => findWalletByExternalId(db, 'user-777')],
    ];
    for (const [title, run] of queries) {
      const sections: string[] = [];
      for (const statement of await statementsOf(run)) {
        const explain = `EXPLAIN (ANALYZE, BUFFERS) ${statement.sql}`;
        await client.query(explain, statement.values); // warm the cache once
        const plan = await client.query<{ 'QUERY PLAN': string }>(explain, statement.values);
        sections.push(
          `\`\`\`sql\n${statement.sql.replace(/\s+/g, ' ').trim()}\n\`\`\`\n\n\`\`\`\n${plan.rows.map((row) => row['QUERY PLAN']).join('\n')}\n\`\`\``,
        );
      }
      console.log(`### ${title}\n\n${sections.join('\n\n')}\n`);
    }
  } finally {
    await client.end();
    if (!values.keep) await dropDatabase(databaseUrl);
  }
}

await main();
