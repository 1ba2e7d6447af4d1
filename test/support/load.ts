import { randomUUID } from 'node:crypto';
import { seededRandom } from '../../bench/load.js';
import { request } from './http.js';

export interface LoadResult {
  accepted: Set<string>;
  duplicatesRefused: number;
  retries: number;
  unexpected: string[];
}

export interface LoadOptions {
  apiUrl: string;
  walletIds: number[];
  count: number;
  concurrency: number;
  seed: number;
  /** Called after each accepted post with the number accepted so far. */
  onAccepted?: (accepted: number) => void | Promise<void>;
}

/**
 * Posts `count` transactions spread over the wallets with `concurrency` requests in flight:
 * mostly deposits, withdrawals big enough that some must be rejected, and one in ten
 * fingerprints sent twice (sometimes at the same moment, sometimes after the answer).
 */
export async function postTransactionLoad(options: LoadOptions): Promise<LoadResult> {
  const random = seededRandom(options.seed);
  const result: LoadResult = { accepted: new Set(), duplicatesRefused: 0, retries: 0, unexpected: [] };
  const plan = Array.from({ length: options.count }, () => {
    const withdrawal = random() < 0.35;
    const cents = 100 + Math.floor(random() * (withdrawal ? 6000 : 5000));
    return {
      walletId: options.walletIds[Math.floor(random() * options.walletIds.length)]!,
      amount: `${withdrawal ? '-' : ''}${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`,
      fingerprint: randomUUID(),
      retry: random() < 0.1 ? (random() < 0.5 ? 'concurrent' : 'after') : 'none',
    };
  });

  const send = async (item: (typeof plan)[number]) => {
    const response = await request(options.apiUrl, 'POST', `/wallets/${item.walletId}/transactions`, {
      json: { amount: item.amount, fingerprint: item.fingerprint, labels: { load: 'test' } },
    });
    if (response.status === 202) {
      result.accepted.add(item.fingerprint);
      await options.onAccepted?.(result.accepted.size);
    } else if (response.status === 409) {
      result.duplicatesRefused += 1;
    } else {
      result.unexpected.push(`${response.status} ${response.text}`);
    }
  };

  let next = 0;
  const lane = async () => {
    while (next < plan.length) {
      const item = plan[next++]!;
      if (item.retry === 'concurrent') {
        result.retries += 1;
        await Promise.all([send(item), send(item)]);
      } else {
        await send(item);
        if (item.retry === 'after') {
          result.retries += 1;
          await send(item);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, lane));
  return result;
}

export async function createWallets(apiUrl: string, count: number, tag: string): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const response = await request(apiUrl, 'POST', '/wallets', { json: { externalId: `${tag}-${i}` } });
    ids.push(response.body.id as number);
  }
  return ids;
}
