import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GroupCommitter, GroupTimeoutError, type ItemResult } from '../../src/shared/infra/group-commit.js';

const ok = <O>(value: O): ItemResult<O> => ({ ok: true, value });

describe('GroupCommitter', () => {
  it('When many items arrive at once, then they are flushed in groups of at most maxSize, each answered with its own result', async () => {
    const groups: number[][] = [];
    const committer = new GroupCommitter<number, number>(
      (items) => {
        groups.push([...items]);
        return Promise.resolve(items.map((item) => ok(item * 10)));
      },
      { maxSize: 4, maxDelayMs: 1, maxInFlight: 1, timeoutMs: 1_000 },
    );
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => committer.submit(i)));
    expect(answers).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(groups.flat()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Math.max(...groups.map((group) => group.length))).toBeLessThanOrEqual(4);
    expect(groups.length).toBeLessThan(10);
  });

  it('When the group statement fails, then each item is retried alone and answered with its own result or its own error', async () => {
    const flushed: number[][] = [];
    const groupFailure = new Error('the group statement failed');
    const twoFails = new Error('two');
    const fourThrows = new Error('four');
    const committer = new GroupCommitter<number, number>(
      (items) => {
        flushed.push([...items]);
        if (items.length > 1) return Promise.reject(groupFailure);
        if (items[0] === 4) return Promise.reject(fourThrows);
        return Promise.resolve(items.map((item) => (item === 2 ? { ok: false, error: twoFails } : ok(item * 10))));
      },
      { maxSize: 8, maxDelayMs: 1, maxInFlight: 1, timeoutMs: 1_000 },
    );

    const settled = await Promise.allSettled([1, 2, 3, 4].map((item) => committer.submit(item)));

    expect(flushed[0]).toEqual([1, 2, 3, 4]);
    expect(flushed.slice(1).sort()).toEqual([[1], [2], [3], [4]]);
    expect(settled).toEqual([
      { status: 'fulfilled', value: 10 },
      { status: 'rejected', reason: twoFails },
      { status: 'fulfilled', value: 30 },
      { status: 'rejected', reason: fourThrows },
    ]);
    // Their own errors, not the group's.
    expect((settled[1] as PromiseRejectedResult).reason).toBe(twoFails);
    expect((settled[3] as PromiseRejectedResult).reason).toBe(fourThrows);
  });
});

describe('GroupCommitter deadlines (fake clock)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('When a flush never settles, then its items fail with GroupTimeoutError at the deadline, not before, and later items still go through', async () => {
    let calls = 0;
    const committer = new GroupCommitter<number, number>(
      (items) => {
        calls += 1;
        return calls === 1 ? new Promise(() => undefined) : Promise.resolve(items.map((item) => ok(item)));
      },
      { maxSize: 8, maxDelayMs: 0, maxInFlight: 1, timeoutMs: 50 },
    );
    const stuck = watch(committer.submit(1));
    await vi.advanceTimersByTimeAsync(49);
    expect(stuck.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(stuck.state).toBe('rejected');
    expect(stuck.error).toBeInstanceOf(GroupTimeoutError);
    const later = watch(committer.submit(2));
    await vi.advanceTimersByTimeAsync(0);
    expect(later).toMatchObject({ state: 'resolved', value: 2 });
  });

  it('When every slot is stuck, then an item queued behind it fails at its own deadline, counted from its submission', async () => {
    const flushed: number[][] = [];
    const committer = new GroupCommitter<number, number>(
      (items) => {
        flushed.push([...items]);
        return new Promise(() => undefined);
      },
      { maxSize: 1, maxDelayMs: 0, maxInFlight: 1, timeoutMs: 100 },
    );
    const first = watch(committer.submit(1));
    await vi.advanceTimersByTimeAsync(30);
    const queued = watch(committer.submit(2)); // its deadline: 30 + 100 = 130

    await vi.advanceTimersByTimeAsync(70); // t = 100: the first's deadline
    expect(first.state).toBe('rejected');
    expect(first.error).toBeInstanceOf(GroupTimeoutError);
    expect(queued.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(29); // t = 129
    expect(queued.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1); // t = 130, not 200: one deadline from submission, not a new one per flush
    expect(queued.state).toBe('rejected');
    expect(queued.error).toBeInstanceOf(GroupTimeoutError);
    expect(flushed[0]).toEqual([1]);
  });
});

/** The state of a promise, readable synchronously while fake timers hold the clock. */
function watch<T>(promise: Promise<T>) {
  const seen: { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } = { state: 'pending' };
  promise.then(
    (value) => Object.assign(seen, { state: 'resolved', value }),
    (error: unknown) => Object.assign(seen, { state: 'rejected', error }),
  );
  return seen;
}
