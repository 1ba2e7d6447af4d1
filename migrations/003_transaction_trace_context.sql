-- The W3C traceparent of the request that reserved the transaction (null when tracing is off).
-- One apply job finalizes many coalesced transactions, and BullMQ deduplication keeps only one
-- add's job data, so the worker links its apply span to each transaction's own context from here.
ALTER TABLE transactions ADD COLUMN trace_context text;
