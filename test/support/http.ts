import { Agent, request as httpRequest } from 'node:http';

export interface HttpResult<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  json?: unknown;
  raw?: string | Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
  /**
   * The API key to send as `Authorization: Bearer <key>`. Left out: the key of the test env that
   * serves `baseUrl` (see createTestEnv/startTestApi), else the one of the env created last in this
   * test file. `null`: send no Authorization header. An `authorization` entry in `headers` wins.
   */
  apiKey?: string | null;
}

/** One answer the API gave during this test file, kept for the contract check (test/support/contract.ts). */
export interface RecordedResponse {
  method: string;
  /** The path as requested, without the query string. */
  path: string;
  status: number;
  contentType: string | null;
  text: string;
}

const keysByOrigin = new Map<string, string>();
let fileDefaultKey: string | undefined;
const recorded: RecordedResponse[] = [];

/** Makes `key` the key `request` sends to `baseUrl` (or, without a URL, to any API of this test file). */
export function useApiKey(key: string, baseUrl?: string): void {
  if (baseUrl === undefined) fileDefaultKey = key;
  else keysByOrigin.set(new URL(baseUrl).origin, key);
}

/** Every response `request` received in this test file so far. */
export function recordedResponses(): readonly RecordedResponse[] {
  return recorded;
}

/** A small JSON client for tests: sends JSON (or a raw string), returns status, headers and parsed body. */
export async function request<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...options.headers };
  const key =
    options.apiKey === undefined ? (keysByOrigin.get(new URL(baseUrl).origin) ?? fileDefaultKey) : options.apiKey;
  const hasAuthorization = Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
  if (key && !hasAuthorization) headers.authorization = `Bearer ${key}`;
  let body: string | Uint8Array<ArrayBuffer> | undefined;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  } else if (options.raw !== undefined) {
    body = options.raw;
  }
  const response = await fetch(baseUrl + path, { method, headers, body });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  recorded.push({
    method: method.toUpperCase(),
    path: new URL(baseUrl + path).pathname,
    status: response.status,
    contentType: response.headers.get('content-type'),
    text,
  });
  return { status: response.status, headers: response.headers, body: parsed as T, text };
}

/**
 * A client with one keep-alive connection of its own (node:http, an agent of one socket), reused
 * right after each answer, as a client process with its own agent does. Unlike `fetch`'s shared
 * pool, it never picks up a connection that sat idle for a while.
 */
export function keepAliveClient(baseUrl: string, apiKey: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  return {
    /** POSTs `json`; resolves with the status, rejects if the request gets no answer. */
    post(path: string, json: unknown): Promise<number> {
      const body = JSON.stringify(json);
      return new Promise((resolve, reject) => {
        const sent = httpRequest(
          new URL(path, baseUrl),
          {
            method: 'POST',
            agent,
            headers: {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
              authorization: `Bearer ${apiKey}`,
            },
          },
          (response) => {
            response.resume();
            response.on('end', () => resolve(response.statusCode ?? 0));
            response.on('error', reject);
          },
        );
        sent.on('error', reject);
        sent.end(body);
      });
    },
    close: () => agent.destroy(),
  };
}

/** True when a request failed because nothing listens at the address (the connection was refused). */
export function isConnectionRefused(error: unknown): boolean {
  return connectionErrorCode(error) === 'ECONNREFUSED';
}

/** What a failed request (`fetch` or node:http) says about its cause, for failure messages. */
export function describeConnectionError(error: unknown): string {
  return connectionErrorCode(error) ?? String(error);
}

function connectionErrorCode(error: unknown): string | undefined {
  const failure = error as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = failure?.code ?? failure?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}
