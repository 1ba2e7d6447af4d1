import { Agent, request } from 'node:http';

export interface HttpResponse {
  status: number;
  body: string;
}

/** A keep-alive HTTP/1.1 client for one host, with at most `maxSockets` connections. */
export class HttpClient {
  private readonly agent: Agent;

  constructor(
    private readonly baseUrl: URL,
    maxSockets: number,
    /** Sent with every request, e.g. the API key's Authorization header. */
    private readonly headers: Record<string, string> = {},
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets });
  }

  request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<HttpResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.agent,
          hostname: this.baseUrl.hostname,
          port: this.baseUrl.port,
          method,
          path,
          headers:
            payload === undefined
              ? this.headers
              : { ...this.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight. */
export async function runConcurrently(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    for (let index = next++; index < count; index = next++) await task(index);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
}
