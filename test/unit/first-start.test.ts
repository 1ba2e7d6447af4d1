import { describe, expect, it } from 'vitest';
import { baseUrl, formatBanner } from '../../src/first-start.js';

describe('the banner', () => {
  it.each([
    ['0.0.0.0', 'http://localhost:3000'],
    ['::', 'http://localhost:3000'],
    ['127.0.0.1', 'http://127.0.0.1:3000'],
    ['::1', 'http://[::1]:3000'],
  ])('When the API listens on %s, then the banner shows %s', (host, url) => {
    expect(baseUrl(host, 3000)).toBe(url);
  });

  it('When a key was made, then the banner shows it as a line to paste into a shell, once', () => {
    const key = `wk_${'a'.repeat(43)}`;
    const text = formatBanner({
      apiUrl: 'http://localhost:3000',
      workerOpsUrl: 'http://localhost:9464',
      keys: { kind: 'created', key },
    });
    expect(text).toContain(`\n    export KEY=${key}\n`);
    expect(text.split(key)).toHaveLength(2);
    expect(text).toContain('curl -s -H "authorization: Bearer $KEY" http://localhost:3000/wallets');
  });
});
