/** telemetry: Prometheus metrics (metrics.ts, http-metrics.ts) and OpenTelemetry tracing helpers (tracing.ts). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DatabasePool } from 'slonik';

/**
 * Prometheus metrics: one registry per process, shared by the API and the worker when they run in
 * one process (`wallet start`). Names are listed in docs/operations.md; labels stay low-cardinality
 * (never a wallet id, transaction id or fingerprint).
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** Content type of the text exposition format, for /metrics responses. */
export const METRICS_CONTENT_TYPE = registry.contentType;

/** Scrapes must not hang on a dependency that is away: each collector gives up after this long. */
const COLLECT_TIMEOUT_MS = 1000;

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const END_TO_END_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

// --- HTTP (API) -------------------------------------------------------------------------------

/** Route label for requests no route matched (404s, probes of random paths): one series, not one per URL. */
export const UNMATCHED_ROUTE = '(unmatched)';

const httpRequests = new Counter({
  name: 'wallet_http_requests_total',
  help: 'HTTP requests answered, by route template, method and status code.',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});

const httpDuration = new Histogram({
  name: 'wallet_http_request_duration_seconds',
  help: 'Time from receiving an HTTP request to finishing its answer, by route template, method and status code.',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export function recordHttpRequest(method: string, route: string, status: number, seconds: number): void {
  const labels = { method, route, status: String(status) };
  httpRequests.inc(labels);
  httpDuration.observe(labels, seconds);
}

// --- Transactions -----------------------------------------------------------------------------

const reserved = new Counter({
  name: 'wallet_transactions_reserved_total',
  help: 'Transactions accepted (fingerprint reserved, pending row committed) by the API.',
  registers: [registry],
});

const applied = new Counter({
  name: 'wallet_transactions_applied_total',
  help: 'Transactions applied to a balance by a worker (committed).',
  registers: [registry],
});

const rejected = new Counter({
  name: 'wallet_transactions_rejected_total',
  help: 'Transactions a worker finalized as rejected, by reason (insufficient_funds, balance_limit_exceeded).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

const voided = new Counter({
  name: 'wallet_transactions_voided_total',
  help: 'Transactions voided (reversed) after they were applied.',
  registers: [registry],
});

const endToEnd = new Histogram({
  name: 'wallet_transaction_end_to_end_seconds',
  help: 'Time from a transaction being reserved to its final state being committed, by final status.',
  labelNames: ['status'] as const,
  buckets: END_TO_END_BUCKETS,
  registers: [registry],
});

const batchSize = new Histogram({
  name: 'wallet_apply_batch_size',
  help: 'Transactions decided in one database transaction (one commit) by a worker.',
  buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
  registers: [registry],
});

const conflictRetries = new Counter({
  name: 'wallet_apply_conflict_retries_total',
  help: 'Apply batches rolled back and retried because another writer changed the wallet (optimistic concurrency).',
  registers: [registry],
});

const applyJobDuration = new Histogram({
  name: 'wallet_apply_job_duration_seconds',
  help: 'Time a worker spent on one apply job (all of a wallet pending transactions), by outcome.',
  labelNames: ['outcome'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

const applyJobFailures = new Counter({
  name: 'wallet_apply_job_failures_total',
  help: 'Apply job attempts that failed (database or Redis trouble); BullMQ retries them with backoff.',
  registers: [registry],
});

const sweeperReenqueued = new Counter({
  name: 'wallet_sweeper_reenqueued_total',
  help: 'Wallets the sweeper enqueued again because a transaction was pending too long.',
  registers: [registry],
});

const sweeperErrors = new Counter({
  name: 'wallet_sweeper_errors_total',
  help: 'Sweeper runs that failed (the next run tries again).',
  registers: [registry],
});

const transfers = new Counter({
  name: 'wallet_transfers_total',
  help: 'Transfers by outcome: requested (the API accepted it), completed (its credit leg applied), rejected (its debit leg rejected).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

const holds = new Counter({
  name: 'wallet_holds_total',
  help: 'Holds by outcome: requested (the API accepted it), active (its queue decided it covered), rejected (not enough available funds), captured, released, expired (by a worker or a request).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

const holdsExpired = new Counter({
  name: 'wallet_holds_expired_total',
  help: 'Holds expired, by who flipped them: worker (the sweeper) or request (a capture or release that found the hold past its expiry).',
  labelNames: ['by'] as const,
  registers: [registry],
});

const transferVoids = new Counter({
  name: 'wallet_transfer_voids_total',
  help: 'Transfer voids by outcome: requested (the API accepted it), voided (its debit reversal applied: both legs reversed), rejected (its credit reversal rejected: the transfer stays completed).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

/** A hold the API accepted, or one a capture or release flipped (counted once the flip committed). */
export function recordHold(outcome: 'requested' | 'captured' | 'released'): void {
  holds.inc({ outcome });
}

/** Holds expired by one flip, and who made it. */
export function recordHoldsExpired(count: number, by: 'worker' | 'request'): void {
  if (count === 0) return;
  holds.inc({ outcome: 'expired' }, count);
  holdsExpired.inc({ by }, count);
}

/** One transfer void the API accepted. */
export function recordTransferVoidRequested(): void {
  transferVoids.inc({ outcome: 'requested' });
}

/** One transfer the API accepted (202). */
export function recordTransferRequested(): void {
  transfers.inc({ outcome: 'requested' });
}

/** One transaction the API accepted (202). */
export function recordReserved(): void {
  reserved.inc();
}

/** Transactions voided: applied reversals, counted by the worker after the batch committed. */
export function recordVoided(count = 1): void {
  voided.inc(count);
}

/** A transaction's final state as a worker committed it. */
export interface FinalizedForMetrics {
  status: 'applied' | 'rejected';
  reason: string | null;
  /** Seconds from reservation (`transactions.created`) to the commit that finalized it. */
  latencySeconds: number;
  /** Which leg of a transfer it is (or which reversal of a leg, for a void), if it is one. */
  transferLeg?: TransferLeg | null;
}

export type TransferLeg = 'debit' | 'credit' | 'credit-reversal' | 'debit-reversal';

/** What one apply job committed; see `ApplySummary`. */
export function recordApplied(result: {
  batchSizes: readonly number[];
  conflictRetries: number;
  finalized: readonly FinalizedForMetrics[];
  /** Holds the committed batches decided, by outcome. */
  holdsActivated?: number;
  holdsRejected?: number;
}): void {
  if (result.holdsActivated) holds.inc({ outcome: 'active' }, result.holdsActivated);
  if (result.holdsRejected) holds.inc({ outcome: 'rejected' }, result.holdsRejected);
  for (const size of result.batchSizes) batchSize.observe(size);
  if (result.conflictRetries > 0) conflictRetries.inc(result.conflictRetries);
  for (const transaction of result.finalized) {
    if (transaction.status === 'applied') applied.inc();
    else rejected.inc({ reason: transaction.reason ?? 'unknown' });
    endToEnd.observe({ status: transaction.status }, Math.max(0, transaction.latencySeconds));
    if (transaction.transferLeg === 'credit' && transaction.status === 'applied')
      transfers.inc({ outcome: 'completed' });
    if (transaction.transferLeg === 'debit' && transaction.status === 'rejected')
      transfers.inc({ outcome: 'rejected' });
    if (transaction.transferLeg === 'debit-reversal' && transaction.status === 'applied')
      transferVoids.inc({ outcome: 'voided' });
    if (transaction.transferLeg === 'credit-reversal' && transaction.status === 'rejected')
      transferVoids.inc({ outcome: 'rejected' });
  }
}

export function recordApplyJob(outcome: 'completed' | 'failed', seconds: number): void {
  applyJobDuration.observe({ outcome }, seconds);
  if (outcome === 'failed') applyJobFailures.inc();
}

export function recordSweep(result: { reenqueued: number } | { error: true }): void {
  if ('error' in result) sweeperErrors.inc();
  else if (result.reenqueued > 0) sweeperReenqueued.inc(result.reenqueued);
}

// --- Gauges read at scrape time ---------------------------------------------------------------

function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out`)), COLLECT_TIMEOUT_MS);
  });
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

const collectErrors = new Counter({
  name: 'wallet_metrics_collect_errors_total',
  help: 'Scrape-time readings that failed or timed out (their series are absent from that scrape), by source.',
  labelNames: ['source'] as const,
  registers: [registry],
});

/** What the queue-depth gauge needs from a BullMQ queue. */
export interface CountableQueue {
  readonly name: string;
  getJobCounts(...types: ('waiting' | 'active' | 'delayed' | 'failed')[]): Promise<Record<string, number>>;
}

const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;
const queues = new Map<string, CountableQueue>();

new Gauge({
  name: 'wallet_queue_jobs',
  help: 'Jobs in a BullMQ queue, by queue and state (waiting, active, delayed, failed).',
  labelNames: ['queue', 'state'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    await Promise.all(
      [...queues.values()].map(async (queue) => {
        try {
          const counts = await withTimeout(queue.getJobCounts(...QUEUE_STATES), 'queue job counts');
          for (const state of QUEUE_STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
        } catch {
          collectErrors.inc({ source: 'queue' });
        }
      }),
    );
  },
});

/** Reports the queue's depth at every scrape until the returned function is called. */
export function registerQueueDepth(queue: CountableQueue): () => void {
  queues.set(queue.name, queue);
  return () => {
    if (queues.get(queue.name) === queue) queues.delete(queue.name);
  };
}

/** Named slonik pools whose connection counts are reported. */
const pools = new Map<string, DatabasePool>();

new Gauge({
  name: 'wallet_db_pool_connections',
  help: 'Postgres connections of a process pool, by pool and state (in_use, idle, waiting = clients queued for one).',
  labelNames: ['pool', 'state'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [name, pool] of pools) {
      const state = pool.state();
      this.set({ pool: name, state: 'in_use' }, state.acquiredConnections);
      this.set({ pool: name, state: 'idle' }, state.idleConnections);
      this.set({ pool: name, state: 'waiting' }, state.waitingClients);
    }
  },
});

new Gauge({
  name: 'wallet_db_pool_max_connections',
  help: 'Largest number of connections a process pool may open (DB_POOL_SIZE), by pool.',
  labelNames: ['pool'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [name, pool] of pools) {
      const max = pool.configuration.maxPoolSize;
      if (max !== undefined) this.set({ pool: name }, max);
    }
  },
});

/** Reports the pool's connections as `pool="<name>"` (e.g. api, worker) until the returned function is called. */
export function registerDatabasePool(name: string, pool: DatabasePool): () => void {
  pools.set(name, pool);
  return () => {
    if (pools.get(name) === pool) pools.delete(name);
  };
}

/** Reads how far a replica pool trails its primary at scrape time (null: not a replica). */
type ReplicaLagReader = () => Promise<number | null>;
const replicaLagReaders = new Map<string, ReplicaLagReader>();

new Gauge({
  name: 'wallet_db_replica_lag_seconds',
  help: 'How far the read replica (DATABASE_READ_URL) trails the primary: 0 when it has replayed all WAL it received, else the age of the last transaction it replayed. Absent without a replica.',
  labelNames: ['pool'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    await Promise.all(
      [...replicaLagReaders].map(async ([pool, read]) => {
        try {
          const lag = await withTimeout(read(), 'replica lag');
          if (lag !== null) this.set({ pool }, lag);
        } catch {
          collectErrors.inc({ source: 'replica' });
        }
      }),
    );
  },
});

/** Reports the replica lag of pool `name` at every scrape until the returned function is called. */
export function registerReplicaLag(name: string, read: ReplicaLagReader): () => void {
  replicaLagReaders.set(name, read);
  return () => {
    if (replicaLagReaders.get(name) === read) replicaLagReaders.delete(name);
  };
}

/** Reads the outbox backlog (events after the relay's cursor) at scrape time; null when not registered. */
type OutboxReader = () => Promise<{ backlog: number; oldestAgeSeconds: number }>;
let readOutbox: OutboxReader | null = null;
let outboxReading: Promise<{ backlog: number; oldestAgeSeconds: number } | null> | null = null;

/** One reading shared by both outbox gauges in a scrape. */
function outboxReadingOnce() {
  if (!readOutbox) return Promise.resolve(null);
  outboxReading ??= withTimeout(readOutbox(), 'outbox reading')
    .catch(() => {
      collectErrors.inc({ source: 'outbox' });
      return null;
    })
    .finally(() => setImmediate(() => (outboxReading = null)));
  return outboxReading;
}

new Gauge({
  name: 'wallet_outbox_backlog_events',
  help: 'Outbox events not yet published (about: counted from the outbox rows after the relay cursor).',
  registers: [registry],
  async collect() {
    this.reset();
    const reading = await outboxReadingOnce();
    if (reading) this.set(reading.backlog);
  },
});

new Gauge({
  name: 'wallet_outbox_oldest_unpublished_age_seconds',
  help: 'Age of the oldest unpublished outbox event, 0 when none waits.',
  registers: [registry],
  async collect() {
    this.reset();
    const reading = await outboxReadingOnce();
    if (reading) this.set(reading.oldestAgeSeconds);
  },
});

/** Reads the outbox backlog with `reader` at every scrape until the returned function is called. */
export function registerOutbox(reader: OutboxReader): () => void {
  readOutbox = reader;
  return () => {
    if (readOutbox === reader) readOutbox = null;
  };
}

/** Reads the event stream's consumer lag at scrape time; null when no relay runs in this process. */
let readStreamLag: (() => Promise<number>) | null = null;

new Gauge({
  name: 'wallet_event_stream_lag_entries',
  help: 'Entries of the Redis event stream not yet delivered to the slowest consumer group (0 without groups). The stream is not trimmed past them, so it grows while a group lags.',
  registers: [registry],
  async collect() {
    this.reset();
    if (!readStreamLag) return;
    try {
      this.set(await withTimeout(readStreamLag(), 'event stream lag'));
    } catch {
      collectErrors.inc({ source: 'event_stream' });
    }
  },
});

/** Reports the event stream's slowest consumer group lag at every scrape until the returned function is called. */
export function registerEventStreamLag(read: () => Promise<number>): () => void {
  readStreamLag = read;
  return () => {
    if (readStreamLag === read) readStreamLag = null;
  };
}

/** The text exposition of every metric of this process. */
export function renderMetrics(): Promise<string> {
  return registry.metrics();
}
