import type { RedisClient } from '../infra/redis.js';

/**
 * Workers announce "wallet W has newly final transactions" on a Redis channel after they commit;
 * API requests that asked to wait (Prefer: wait=N) re-read their transaction when it concerns them.
 * A lost notice only costs latency: waiters also re-check on a short interval.
 */
export function finalizationChannel(prefix: string): string {
  return `${prefix}:finalized`;
}

export async function announceFinalized(redis: RedisClient, prefix: string, walletId: number): Promise<void> {
  await redis.publish(finalizationChannel(prefix), String(walletId));
}

const RECHECK_INTERVAL_MS = 1000;

export class FinalizationListener {
  private readonly waiters = new Map<number, Set<() => void>>();
  private readonly closing = new AbortController();

  constructor(
    private readonly subscriber: RedisClient,
    private readonly channel: string,
    /** How often a waiter re-checks without news (tests stretch it to see the notices alone at work). */
    private readonly recheckIntervalMs = RECHECK_INTERVAL_MS,
  ) {
    subscriber.on('message', (receivedOn: string, message: string) => {
      if (receivedOn !== this.channel) return;
      for (const wake of this.waiters.get(Number(message)) ?? []) wake();
    });
  }

  async start(): Promise<void> {
    await this.subscriber.subscribe(this.channel);
  }

  /**
   * Calls `check` until it returns a value, re-checking whenever the wallet has news;
   * null when `timeoutMs` passes or the listener closes first.
   */
  async waitFor<T>(walletId: number, timeoutMs: number, check: () => Promise<T | null>): Promise<T | null> {
    const deadline = Date.now() + timeoutMs;
    let wake: () => void = () => {};
    let news: boolean;
    const onNews = () => {
      news = true;
      wake();
    };
    const set = this.waiters.get(walletId) ?? new Set();
    set.add(onNews);
    this.waiters.set(walletId, set);
    try {
      for (;;) {
        news = false;
        const found = await check();
        if (found !== null) return found;
        const remaining = deadline - Date.now();
        if (remaining <= 0 || this.closing.signal.aborted) return null;
        if (news) continue;
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            this.closing.signal.removeEventListener('abort', done);
            wake = () => {};
            resolve();
          };
          const timer = setTimeout(done, Math.min(remaining, this.recheckIntervalMs));
          wake = done;
          this.closing.signal.addEventListener('abort', done, { once: true });
        });
      }
    } finally {
      set.delete(onNews);
      if (set.size === 0) this.waiters.delete(walletId);
    }
  }

  /** Releases every waiter (they answer with what they have) and unsubscribes. */
  async close(): Promise<void> {
    this.closing.abort();
    await this.subscriber.unsubscribe(this.channel).catch(() => undefined);
  }
}
