import { describe, expect, it } from 'vitest';

describe('runtime', () => {
  it('When the tests run, then they run on Node 24 or later (the line the image ships)', () => {
    const major = Number(process.versions.node.split('.')[0]);
    expect(major, `running on Node ${process.versions.node}`).toBeGreaterThanOrEqual(24);
  });
});
