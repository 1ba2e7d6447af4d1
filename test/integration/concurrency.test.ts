import { describeConcurrency } from '../support/concurrency-suite.js';
import { SINGLE_REDIS } from '../support/redis-topologies.js';

describeConcurrency(SINGLE_REDIS);
