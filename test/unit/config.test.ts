import { describe, expect, it } from 'vitest';
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
