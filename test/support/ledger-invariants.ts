import type { DatabasePool } from 'slonik';
import { auditLedger, describeViolation } from '../../src/shared/audit/ledger-audit.js';

/**
 * The rules of money over the whole database, after the work has drained: the service's own
 * audit (src/shared/audit/ledger-audit.ts, `wallet audit --settled`), one line per violation.
 * An empty list means the ledger is sound.
 */
export async function findLedgerViolations(pool: DatabasePool): Promise<string[]> {
  const report = await auditLedger(pool, { settled: true });
  return report.violations.map(describeViolation);
}
