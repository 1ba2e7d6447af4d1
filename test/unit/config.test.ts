import { describe, expect, it } from 'vitest';
import { maskUrl } from '../../src/shared/infra/dependencies.js';
import { ConfigError, loadConfig } from '../../src/shared/infra/config.js';

describe('loadConfig', () => {
  it('has defaults that work on a machine with local Postgres and Redis', () => {
    const config = loadConfig({});
    expect(config.DATABASE_URL).toBe('postgres://postgres@127.0.0.1:5432/wallet');
    expect(config.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(config.PORT).toBe(3000);
  });

  it("honours the original service's DB_DATABASE and LOGLEVEL", () => {
    const config = loadConfig({ DB_DATABASE: 'postgresql://u:p@db/walletdb', LOGLEVEL: 'debug' });
    expect(config.DATABASE_URL).toBe('postgresql://u:p@db/walletdb');
    expect(config.LOG_LEVEL).toBe('debug');
  });

  it('refuses nonsense with a message naming the setting', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
  });
});

describe('empty settings', () => {
  const defaults = loadConfig({});
  const numericOrBoolean = Object.entries(defaults)
    .filter(([, value]) => typeof value === 'number' || typeof value === 'boolean')
    .map(([name]) => name as keyof typeof defaults);

  it('covers the numeric and boolean settings', () => {
    expect(numericOrBoolean).toContain('RATE_LIMIT_PER_SECOND');
    expect(numericOrBoolean).toContain('AUTH_DISABLED');
    expect(numericOrBoolean.length).toBeGreaterThan(20);
  });

  it.each(numericOrBoolean)('When %s is set to an empty or blank value, then it has its default', (name) => {
    expect(loadConfig({ [name]: '' })[name]).toBe(defaults[name]);
    expect(loadConfig({ [name]: '  ' })[name]).toBe(defaults[name]);
  });

  it('When RATE_LIMIT_PER_SECOND is empty, then rate limiting stays on at its default', () => {
    expect(loadConfig({ RATE_LIMIT_PER_SECOND: '' }).RATE_LIMIT_PER_SECOND).toBe(100);
  });

  it.each(numericOrBoolean)('When %s is not a number (or boolean), then the process refuses to start', (name) => {
    expect(() => loadConfig({ [name]: 'lots' })).toThrow(new RegExp(name));
  });
});

describe('BODY_LIMIT', () => {
  it.each([
    [undefined, 16 * 1024],
    ['16kb', 16 * 1024],
    ['1MB', 1024 * 1024],
    ['2048', 2048],
    ['512 b', 512],
  ])('When BODY_LIMIT is %s, then the limit is %i bytes', (given, bytes) => {
    expect(loadConfig(given === undefined ? {} : { BODY_LIMIT: given }).BODY_LIMIT).toBe(bytes);
  });

  it.each(['16 kilobytes', '-1kb', '1.5mb'])('When BODY_LIMIT is %s, then the process refuses to start', (given) => {
    expect(() => loadConfig({ BODY_LIMIT: given })).toThrow(/BODY_LIMIT/);
  });
});

describe('masked URLs in messages', () => {
  it.each([
    ['postgres://postgres:s3cret@127.0.0.1:5432/wallet', 'postgres://postgres:***@127.0.0.1:5432/wallet'],
    ['redis://:s3cret@127.0.0.1:6379', 'redis://:***@127.0.0.1:6379'],
    ['postgres://postgres@127.0.0.1:5432/wallet', 'postgres://postgres@127.0.0.1:5432/wallet'],
    ['not a url s3cret', '(not a URL)'],
  ])('When the URL is %s, then the message shows %s', (url, shown) => {
    expect(maskUrl(url)).toBe(shown);
  });
});
