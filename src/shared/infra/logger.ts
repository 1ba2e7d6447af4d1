import { pino, type Logger } from 'pino';
import type { Config } from './config.js';
import { traceLogFields } from '../telemetry/tracing.js';

export type { Logger };

export function createLogger(config: Pick<Config, 'LOG_LEVEL'>, name: string): Logger {
  // trace_id and span_id of the active span, when tracing is on, so logs and traces join up.
  return pino({ name, level: config.LOG_LEVEL, base: { pid: process.pid, name }, mixin: traceLogFields });
}
