import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * vitest globalSetup: a 3-master Redis Cluster on 127.0.0.1:7101-7103 for the tests that run on
 * one (test/integration/cluster.test.ts), started with the machine's redis-server by
 * ops/redis-cluster.sh and stopped after the run. One already running there (an operator's
 * `ops/redis-cluster.sh start`) is used and left running; TEST_REDIS_CLUSTER_URL set means the
 * cluster is someone else's: nothing is started.
 */
const run = promisify(execFile);
const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../ops/redis-cluster.sh');

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (process.env.TEST_REDIS_CLUSTER_URL) return undefined;
  const running = await run(SCRIPT, ['status']).then(
    () => true,
    () => false,
  );
  if (running) return undefined;
  // A start cut short (a node left over from a killed run) gets one clean retry.
  await run(SCRIPT, ['start']).catch(async () => {
    await run(SCRIPT, ['stop']);
    await run(SCRIPT, ['start']);
  });
  return async () => {
    await run(SCRIPT, ['stop']);
  };
}
