import type { RedisClient } from './redis.js';

/** Closing steps that talk to a dependency must not hang a shutdown while that dependency is away. */
const STEP_TIMEOUT_MS = 2000;

/** Waits for `step` at most `ms`; true when it finished in time (its failure counts as finished). */
export async function settleWithin(step: Promise<unknown>, ms = STEP_TIMEOUT_MS): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      step.then(
        () => true,
        () => true,
      ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** QUIT politely; if Redis does not answer in time, drop the connection. */
export async function closeRedis(redis: RedisClient, ms = STEP_TIMEOUT_MS): Promise<void> {
  if (!(await settleWithin(redis.quit(), ms))) redis.disconnect();
}
