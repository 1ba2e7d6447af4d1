import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import express from 'express';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { requestId } from '../../src/api/middleware/request-id.js';
import { errorHandler } from '../../src/api/problem.js';

/** An app whose route fails the way a bug or a database error would, with a logger we can read. */
async function withFailingApp(run: (url: string, lines: Record<string, any>[]) => Promise<void>) {
  const lines: Record<string, any>[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()));
        done();
      },
    }),
  );
  const app = express();
  app.use(requestId(logger));
  app.get('/boom', () => {
    const error = new Error('syntax error at or near "FROM" in SELECT balance FROM wallets WHERE id = 1');
    Object.assign(error, { sql: 'SELECT balance FROM wallets WHERE id = $1', code: '42601' });
    throw error;
  });
  app.use(errorHandler(logger));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, lines);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('unexpected errors', () => {
  it('When a handler fails, then the answer is a bare 500 problem (no stack, no SQL) and the log line carries the request id and the details', async () => {
    await withFailingApp(async (url, lines) => {
      const response = await fetch(`${url}/boom`, { headers: { 'x-request-id': 'trace-me-42' } });
      const text = await response.text();
      expect(response.status).toBe(500);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(text)).toEqual({
        type: '/problems/internal-error',
        title: 'Internal Server Error',
        status: 500,
        detail: 'the request could not be completed',
      });
      expect(text).not.toMatch(/SELECT|syntax error|42601|\bat \S+:\d+/);
      expect(response.headers.get('x-request-id')).toBe('trace-me-42');

      const logged = lines.find((line) => line.msg === 'request failed');
      expect(logged).toMatchObject({ requestId: 'trace-me-42', level: 50 });
      expect(logged!.err.message).toContain('syntax error');
    });
  });
});
