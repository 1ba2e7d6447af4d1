/**
 * Group commit: concurrent callers each submit one item; items that arrive within a short moment
 * (or while every flush slot is busy) are handed to one `flush` call, so a group pays one round
 * trip and one commit instead of one each. Every caller still gets its own result or error.
 */

import { within } from './time-limit.js';

export type ItemResult<O> = { ok: true; value: O } | { ok: false; error: unknown };

export interface GroupCommitOptions {
  /** Most items in one group. */
  maxSize: number;
  /** How long the first item of a group waits for company when a flush slot is free. */
  maxDelayMs: number;
  /** Most flushes running at once; items arriving meanwhile wait and form the next group. */
  maxInFlight: number;
  /**
   * A flush that has not settled by then fails its items with GroupTimeoutError and frees its
   * slot, so one stuck call (a query on a connection that died without a word) cannot hold up
   * every later item. What it did, if anything, stays done: callers must be safe to retry.
   */
  timeoutMs: number;
}

/** A group's flush did not settle in time; whether it took effect is unknown. */
export class GroupTimeoutError extends Error {}

interface Waiting<I, O> {
  item: I;
  /** When this item stops waiting: `timeoutMs` after it was submitted. */
  deadline: number;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/** Items of a failed group retried one at a time, this many at once. */
const FALLBACK_CONCURRENCY = 4;

/**
 * `flush` gets a group and answers one result per item, in order. If it throws, a group of
 * several is retried item by item (a few at a time), so an item that makes the group statement
 * fail fails alone and no item is answered twice or lost. Every item has one deadline, counted
 * from its submission, whether it is still waiting for a slot or inside a flush: past it, it fails
 * with GroupTimeoutError (nothing is started for an item that never left the queue).
 */
export class GroupCommitter<I, O> {
  private queue: Waiting<I, O>[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly flush: (items: readonly I[]) => Promise<ItemResult<O>[]>,
    private readonly options: GroupCommitOptions,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      const waiting = { item, deadline: Date.now() + this.options.timeoutMs, resolve, reject };
      this.queue.push(waiting);
      // Still queued at its deadline (every slot stuck or slow): give up on it without running it.
      setTimeout(() => {
        const index = this.queue.indexOf(waiting);
        if (index < 0) return;
        this.queue.splice(index, 1);
        reject(new GroupTimeoutError(`not started within ${this.options.timeoutMs} ms`));
      }, this.options.timeoutMs).unref();
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.inFlight >= this.options.maxInFlight || this.queue.length === 0) return;
    if (this.queue.length >= this.options.maxSize || this.options.maxDelayMs <= 0) {
      this.startFlush();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.startFlush();
    }, this.options.maxDelayMs);
  }

  private startFlush(): void {
    if (this.inFlight >= this.options.maxInFlight || this.queue.length === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const group = this.queue.splice(0, this.options.maxSize);
    this.inFlight += 1;
    void this.run(group).finally(() => {
      this.inFlight -= 1;
      // Whatever gathered meanwhile goes at once: it has already waited for a slot.
      if (this.queue.length > 0) this.startFlush();
    });
  }

  private async run(group: Waiting<I, O>[]): Promise<void> {
    const remaining = Math.min(...group.map((waiting) => waiting.deadline)) - Date.now();
    if (remaining <= 0) {
      for (const waiting of group) waiting.reject(new GroupTimeoutError('deadline passed before the flush'));
      return;
    }
    let results: ItemResult<O>[];
    try {
      results = await within(
        this.flush(group.map((waiting) => waiting.item)),
        remaining,
        () => new GroupTimeoutError(`no answer within ${this.options.timeoutMs} ms`),
      );
    } catch (error) {
      if (error instanceof GroupTimeoutError || group.length === 1) {
        for (const waiting of group) waiting.reject(error);
        return;
      }
      await this.runOneByOne(group);
      return;
    }
    group.forEach((waiting, index) => {
      const result = results[index];
      if (!result) waiting.reject(new Error('group commit: no result for an item'));
      else if (result.ok) waiting.resolve(result.value);
      else waiting.reject(result.error);
    });
  }

  /** A failed group's items, each alone, a few at a time, within their own deadlines. */
  private async runOneByOne(group: Waiting<I, O>[]): Promise<void> {
    let next = 0;
    const lane = async () => {
      for (let index = next++; index < group.length; index = next++) await this.run([group[index]!]);
    };
    await Promise.all(Array.from({ length: Math.min(FALLBACK_CONCURRENCY, group.length) }, lane));
  }
}
