import { performance } from 'node:perf_hooks';
import { unitsToDecimal } from '../src/shared/ledger/money.js';
import { runConcurrently, type HttpClient } from './http.js';

export interface PlannedTransaction {
  walletId: number;
  /** A transfer from `walletId` to this wallet (POST /transfers) instead of a transaction of `walletId`. */
  to?: number;
  amount: string;
  fingerprint: string;
  /** A withdrawal far beyond any balance the scenario can reach: the service has to reject it. */
  mustReject: boolean;
}

export interface PostResult {
  count: number;
  /** Date.now() when the first POST was sent and when the last one answered. */
  startedAt: number;
  finishedAt: number;
  latenciesMs: number[];
}

/** mulberry32: a small seeded generator, so that a run's load can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Whole cents in [min, max], as exact decimal text. */
function randomAmount(random: () => number, minCents: number, maxCents: number, sign: 1n | -1n): string {
  const cents = BigInt(minCents + Math.floor(random() * (maxCents - minCents + 1))) * 10n;
  return unitsToDecimal(sign * cents);
}

export interface LoadMix {
  /** Share of withdrawals of 1.00..20.00. */
  withdrawalShare: number;
  /** Share of withdrawals of `rejectAmount`, which no balance in the scenario can cover. */
  rejectShare: number;
  rejectAmount: string;
  /** Transfers instead of transactions: between random pairs, or from the first wallet (a house wallet) to the others. */
  transfers?: 'random-pairs' | 'from-first';
}

/** Deposits of 1.00..50.00, some small withdrawals and a few that must be rejected, over `walletIds` uniformly. */
export function planTransactions(
  walletIds: readonly number[],
  count: number,
  mix: LoadMix,
  random: () => number,
): PlannedTransaction[] {
  if (mix.transfers) return planTransfers(walletIds, count, mix.transfers, random);
  return Array.from({ length: count }, (_, index) => {
    const walletId = walletIds[Math.floor(random() * walletIds.length)]!;
    const roll = random();
    const mustReject = roll < mix.rejectShare;
    const amount = mustReject
      ? mix.rejectAmount
      : roll < mix.rejectShare + mix.withdrawalShare
        ? randomAmount(random, 100, 2000, -1n)
        : randomAmount(random, 100, 5000, 1n);
    return { walletId, amount, fingerprint: `m-${index}${mustReject ? '-x' : ''}`, mustReject };
  });
}

/** Transfers of 1.00..20.00, fingerprints m-<index>; the seed deposits cover every one. */
function planTransfers(
  walletIds: readonly number[],
  count: number,
  shape: 'random-pairs' | 'from-first',
  random: () => number,
): PlannedTransaction[] {
  const pick = () => walletIds[Math.floor(random() * walletIds.length)]!;
  return Array.from({ length: count }, (_, index) => {
    const from = shape === 'from-first' ? walletIds[0]! : pick();
    let to = pick();
    while (to === from) to = pick();
    return {
      walletId: from,
      to,
      amount: randomAmount(random, 100, 2000, 1n),
      fingerprint: `m-${index}`,
      mustReject: false,
    };
  });
}

function expectStatus(
  what: string,
  expected: number | readonly number[],
  response: { status: number; body: string },
): void {
  const accepted = typeof expected === 'number' ? [expected] : expected;
  if (!accepted.includes(response.status)) {
    throw new Error(
      `${what}: expected HTTP ${accepted.join('/')}, got ${response.status}: ${response.body.slice(0, 300)}`,
    );
  }
}

/** What a POST of a transaction answers: the service accepts (202); the synchronous reference decides at once. */
export type Acceptance = readonly number[];
export const QUEUED: Acceptance = [202];
export const DECIDED: Acceptance = [201, 422];

export async function createWallets(
  client: HttpClient,
  count: number,
  concurrency: number,
  tag: string,
): Promise<number[]> {
  const ids: number[] = new Array<number>(count);
  await runConcurrently(count, concurrency, async (index) => {
    const response = await client.request('POST', '/wallets', {
      externalId: `${tag}-${index}`,
      labels: { bench: tag },
    });
    expectStatus('POST /wallets', 201, response);
    ids[index] = (JSON.parse(response.body) as { id: number }).id;
  });
  return ids;
}

/** One deposit of `amount` to every wallet; fingerprints s-<walletId>. */
export async function seedWallets(
  client: HttpClient,
  walletIds: readonly number[],
  amount: string,
  concurrency: number,
  accepted: Acceptance = QUEUED,
): Promise<void> {
  await runConcurrently(walletIds.length, concurrency, async (index) => {
    const walletId = walletIds[index]!;
    const response = await client.request('POST', `/wallets/${walletId}/transactions`, {
      amount,
      fingerprint: `s-${walletId}`,
      description: 'bench seed',
    });
    expectStatus('seed deposit', accepted, response);
  });
}

/** Posts every planned transaction, timing each POST; every one must be accepted (202, or decided for the reference). */
export async function postTransactions(
  client: HttpClient,
  planned: readonly PlannedTransaction[],
  concurrency: number,
  accepted: Acceptance = QUEUED,
  onAnswered: (answered: number) => void = () => undefined,
): Promise<PostResult> {
  const latenciesMs = new Array<number>(planned.length);
  const startedAt = Date.now();
  let answered = 0;
  await runConcurrently(planned.length, concurrency, async (index) => {
    const tx = planned[index]!;
    const t0 = performance.now();
    const response =
      tx.to === undefined
        ? await client.request('POST', `/wallets/${tx.walletId}/transactions`, {
            amount: tx.amount,
            fingerprint: tx.fingerprint,
            labels: { bench: 'load' },
          })
        : await client.request('POST', '/transfers', {
            from: tx.walletId,
            to: tx.to,
            amount: tx.amount,
            fingerprint: tx.fingerprint,
            labels: { bench: 'load' },
          });
    latenciesMs[index] = performance.now() - t0;
    expectStatus('POST transaction', accepted, response);
    onAnswered(++answered);
  });
  return { count: planned.length, startedAt, finishedAt: Date.now(), latenciesMs };
}

/** Nearest-rank percentile of `values` (ms), p in (0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}
