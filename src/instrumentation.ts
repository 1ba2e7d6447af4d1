/**
 * OpenTelemetry entry, loaded before the app: `node --import ./dist/instrumentation.js dist/cli.js api`.
 *
 * Tracing is off unless an exporter is configured through the standard variables
 * (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER other
 * than "none"), so local runs and tests load nothing here. When on, the SDK reads everything else
 * from OTEL_* too (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER, ...).
 * Instrumented: http (incoming and outgoing), express, pg and ioredis.
 */
import { register } from 'node:module';
import { isSupportedNode } from './node-version.js';
import { registerTracingShutdown } from './shared/telemetry/tracing.js';

const env = process.env;
const exporter = env.OTEL_TRACES_EXPORTER?.trim();
// On a Node the service does not support, load nothing: cli.js then says which Node is needed.
const enabled =
  isSupportedNode(process.versions.node) &&
  env.OTEL_SDK_DISABLED !== 'true' &&
  exporter !== 'none' &&
  Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || exporter);

if (enabled) {
  // ESM modules (and CommonJS ones imported from ESM) are patched through import-in-the-middle.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);

  const [{ NodeSDK }, { HttpInstrumentation }, { ExpressInstrumentation }, { PgInstrumentation }, ioredis] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/instrumentation-http'),
      import('@opentelemetry/instrumentation-express'),
      import('@opentelemetry/instrumentation-pg'),
      import('@opentelemetry/instrumentation-ioredis'),
    ]);

  // Probes and scrapes arrive every few seconds; tracing them only buries the real requests.
  const OPS_PATHS = new Set(['/metrics', '/healthz', '/readyz']);
  const role = process.argv.slice(2).find((arg) => !arg.startsWith('-')) ?? 'service';

  const sdk = new NodeSDK({
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName: `wallet-${role}` }),
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => OPS_PATHS.has((req.url ?? '').split('?')[0] ?? ''),
      }),
      new ExpressInstrumentation(),
      // Only inside a trace: the sweeper's scans and BullMQ's polling would otherwise each be a trace.
      new PgInstrumentation({ requireParentSpan: true }),
      new ioredis.IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  sdk.start();
  registerTracingShutdown(() => sdk.shutdown());
}
