import { describe, expect, it } from 'vitest';
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

  it('When one item fails the group, then the others are retried alone and only that one fails', async () => {
    const committer = new GroupCommitter<number, number>(
      (items) =>
        items.includes(3) && items.length > 1
          ? Promise.reject(new Error('the group statement failed'))
          : Promise.resolve(items.map((item) => (item === 3 ? { ok: false, error: new Error('three') } : ok(item)))),
      { maxSize: 8, maxDelayMs: 1, maxInFlight: 1, timeoutMs: 1_000 },
    );
    const settled = await Promise.allSettled([1, 2, 3, 4].map((item) => committer.submit(item)));
    expect(settled.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
  });

  it('When a flush never settles, then its items fail with GroupTimeoutError and later items still go through', async () => {
    let calls = 0;
    const committer = new GroupCommitter<number, number>(
      (items) => {
        calls += 1;
        return calls === 1 ? new Promise(() => undefined) : Promise.resolve(items.map((item) => ok(item)));
      },
      { maxSize: 8, maxDelayMs: 0, maxInFlight: 1, timeoutMs: 50 },
    );
    const stuck = committer.submit(1);
    await expect(stuck).rejects.toBeInstanceOf(GroupTimeoutError);
    await expect(committer.submit(2)).resolves.toBe(2);
  });

  it('When every slot is stuck, then items queued behind it fail at their own deadline, counted from submission', async () => {
    const flushed: number[][] = [];
    const committer = new GroupCommitter<number, number>(
      (items) => {
        flushed.push([...items]);
        return new Promise(() => undefined);
      },
      { maxSize: 1, maxDelayMs: 0, maxInFlight: 1, timeoutMs: 100 },
    );
    const started = Date.now();
    const first = committer.submit(1);
    const queued = committer.submit(2);
    await expect(queued).rejects.toBeInstanceOf(GroupTimeoutError);
    await expect(first).rejects.toBeInstanceOf(GroupTimeoutError);
    // Not 100 ms for the first and then 100 more for the second: one deadline each, from submission.
    expect(Date.now() - started).toBeLessThan(180);
    expect(flushed[0]).toEqual([1]);
  });
});
