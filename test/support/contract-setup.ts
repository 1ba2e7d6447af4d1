import { afterAll } from 'vitest';
import { recordedResponses } from './http.js';

/**
 * The contract test, run for every test file (vitest setupFiles): once the file's tests are done,
 * every answer `request` received is checked against the OpenAPI document the API serves.
 */
afterAll(async () => {
  const records = recordedResponses();
  if (records.length === 0) return;
  const { ContractChecker } = await import('./contract.js');
  const failures = new ContractChecker().checkAll(records);
  if (failures.length > 0) {
    const shown = [...new Set(failures)].slice(0, 25);
    throw new Error(
      `${failures.length} of ${records.length} responses do not match openapi.json:\n  ${shown.join('\n  ')}`,
    );
  }
});
