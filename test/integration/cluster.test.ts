import { describeConcurrency } from '../support/concurrency-suite.js';
import { REDIS_CLUSTER } from '../support/redis-topologies.js';
import { describeWorkersThatDie } from '../support/worker-crash-suite.js';

// The concurrency and worker-crash bodies of concurrency.test.ts and crash.test.ts, on a Redis
// Cluster of three masters (started for the test run: test/support/redis-cluster-setup.ts) with
// the apply queue in three shards.
describeConcurrency(REDIS_CLUSTER);
describeWorkersThatDie(REDIS_CLUSTER);
