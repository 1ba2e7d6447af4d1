import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabasePool, withCustomPlans, type DatabasePool } from '../../src/shared/infra/db.js';
import { createTestEnv, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let pool: DatabasePool;

beforeAll(async () => {
  env = await createTestEnv('db_plans');
  pool = await createDatabasePool(env.config, 'wallet-test');
  await pool.query(sql.unsafe`CREATE TABLE plan_probe (id uuid PRIMARY KEY, payload text NOT NULL, link bigint)`);
});

afterAll(async () => {
  await pool.end();
  await env.destroy();
});

const planLine = z.object({ 'QUERY PLAN': z.string() });

describe('statement plans of the service pools', () => {
  it('When a table grows from empty under a named statement, then the statement is planned for its new size (an index scan, not the seq scan of the empty table)', async () => {
    await pool.connect(async (connection) => {
      // The shape of the apply statement's transfer link: a key lookup under a filter, fed by a CTE.
      const probe = (ids: string[]) =>
        connection.query(sql.prepared('plan_probe', z.object({ id: z.string() }))`
          WITH d AS MATERIALIZED (SELECT * FROM unnest(${sql.array(ids, 'uuid')}) AS k (id))
          UPDATE plan_probe p SET link = 1 FROM d WHERE p.id = d.id AND p.link IS NULL RETURNING p.id
        `);
      // More than the five runs after which Postgres would switch to a generic plan, all while empty.
      for (let run = 0; run < 8; run++) await probe([randomUUID()]);
      await connection.query(sql.unsafe`
        INSERT INTO plan_probe SELECT gen_random_uuid(), repeat('x', 100) FROM generate_series(1, 50000)
      `);
      expect((await probe([randomUUID()])).rowCount).toBe(0);
      const plan = await connection.any(sql.type(planLine)`EXPLAIN EXECUTE plan_probe(ARRAY[gen_random_uuid()])`);
      const text = plan.map((line) => line['QUERY PLAN']).join('\n');
      expect(text).toContain('Index');
      expect(text).not.toContain('Seq Scan on plan_probe');
    });
  });

  it('When the URL sets its own session options, then they are kept beside the plan setting, and its own plan_cache_mode wins', async () => {
    expect(withCustomPlans(null)).toBe('-c plan_cache_mode=force_custom_plan');
    expect(withCustomPlans('-c work_mem=8MB')).toBe('-c work_mem=8MB -c plan_cache_mode=force_custom_plan');
    expect(withCustomPlans('-c plan_cache_mode=auto')).toBe('-c plan_cache_mode=auto');
    const url = new URL(env.config.DATABASE_URL);
    url.searchParams.set('options', '-c work_mem=8MB');
    const custom = await createDatabasePool({ DATABASE_URL: url.toString(), DB_POOL_SIZE: 1 });
    try {
      const settings = await custom.one(
        sql.type(z.object({ mode: z.string(), workMem: z.string() }))`
          SELECT current_setting('plan_cache_mode') AS mode, current_setting('work_mem') AS "workMem"
        `,
      );
      expect(settings).toEqual({ mode: 'force_custom_plan', workMem: '8MB' });
    } finally {
      await custom.end();
    }
  });
});
