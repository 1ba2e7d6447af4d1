import { describe, expect, it } from 'vitest';
import { preferredWaitSeconds } from '../../src/api/prefer-wait.js';

describe('preferredWaitSeconds', () => {
  it.each([
    [undefined, 0],
    ['', 0],
    ['wait=5', 5],
    ['respond-async, wait=10', 10],
    ['wait=100', 30],
    ['WAIT=2', 2],
    ['wait="3"', 3],
    ['wait=abc', 0],
    ['wait=-1', 0],
    ['handling=strict', 0],
    ['nowait=5', 0],
  ])('%j -> %d seconds', (header, seconds) => {
    expect(preferredWaitSeconds(header, 30)).toBe(seconds);
  });
});
