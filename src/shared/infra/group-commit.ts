/**
 * Group commit: concurrent callers each submit one item; items that arrive within a short moment
 * (or while every flush slot is busy) are handed to one `flush` call, so a group pays one round
 * trip and one commit instead of one each. Every caller still gets its own result or error.
 */

export type ItemResult<O> = { ok: true; value: O } | { ok: false; error: unknown };

export interface GroupCommitOptions {
  /** Most items in one group. */
  maxSize: number;
  /** How long the first item of a group waits for company when a flush slot is free. */
  maxDelayMs: number;
  /** Most flushes running at once; items arriving meanwhile wait and form the next group. */
  maxInFlight: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/**
 * `flush` gets a group and answers one result per item, in order. If it throws, a group of
 * several is retried item by item, so an item that makes the group statement fail fails alone
 * and no item is answered twice or lost.
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
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Items waiting for a flush slot (for tests and metrics). */
  get waiting(): number {
    return this.queue.length;
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
    let results: ItemResult<O>[];
    try {
      results = await this.flush(group.map((waiting) => waiting.item));
    } catch (error) {
      if (group.length === 1) {
        group[0]!.reject(error);
        return;
      }
      await Promise.all(group.map((waiting) => this.run([waiting])));
      return;
    }
    group.forEach((waiting, index) => {
      const result = results[index];
      if (!result) waiting.reject(new Error('group commit: no result for an item'));
      else if (result.ok) waiting.resolve(result.value);
      else waiting.reject(result.error);
    });
  }
}
