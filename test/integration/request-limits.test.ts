import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, startTestApi, type TestEnv } from '../support/test-env.js';

let env: TestEnv;
let api: Awaited<ReturnType<typeof startTestApi>>;

beforeAll(async () => {
  env = await createTestEnv('request_limits');
  api = await startTestApi(env);
});

afterAll(async () => {
  await api?.close();
  await env?.destroy();
});

/**
 * Sends `head` (request line and headers, no body byte) on a raw connection and collects what the
 * server writes until it closes the connection or `waitMs` passes.
 */
function exchange(head: string, waitMs: number): Promise<{ text: string; closed: boolean; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(api.port, '127.0.0.1', () => socket.write(head));
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false, ms: Date.now() - started });
    }, waitMs);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true, ms: Date.now() - started });
    });
  });
}

const head = (extra: string[]) =>
  [
    'POST /wallets HTTP/1.1',
    'Host: 127.0.0.1',
    `Authorization: Bearer ${env.apiKey}`,
    'Content-Type: application/json',
    ...extra,
    '',
    '',
  ].join('\r\n');

describe('a body announced over the limit', () => {
  it('When Content-Length is over BODY_LIMIT and no body byte follows, then the answer is 413 at once and the connection closes', async () => {
    const answer = await exchange(head(['Content-Length: 10000000']), 5_000);
    expect(answer.text).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(answer.text).toMatch(/\r\nx-request-id: /i);
    expect(answer.text).toContain('"type":"/problems/body-too-large"');
    expect(answer.closed).toBe(true);
    expect(answer.ms).toBeLessThan(2_000);
  });

  it('When the client asks Expect: 100-continue for a body over the limit, then it gets 413 and never a 100 Continue', async () => {
    const answer = await exchange(head(['Content-Length: 10000000', 'Expect: 100-continue']), 5_000);
    expect(answer.text).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer.text).not.toContain('100 Continue');
    expect(answer.closed).toBe(true);
  });

  it('When the client asks Expect: 100-continue for a body within the limit, then it is told to continue and the body is read', async () => {
    const body = JSON.stringify({ externalId: 'expect-continue' });
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(api.port, '127.0.0.1', () =>
        socket.write(head([`Content-Length: ${Buffer.byteLength(body)}`, 'Expect: 100-continue', 'Connection: close'])),
      );
      let text = '';
      setTimeout(() => socket.destroy(), 5_000).unref(); // no 100 Continue: the body is never sent
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.startsWith('HTTP/1.1 100 Continue\r\n\r\n') && !text.includes('201')) socket.write(body);
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(text));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
  });
});
