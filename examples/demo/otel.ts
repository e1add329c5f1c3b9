// `OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 npm run demo`: the demo's traces (and
// metrics) also go out by OTLP/HTTP, set up as docs/observability.md shows — the Node SDK, the
// ESM loader hook, the HTTP and pg instrumentations — with the page's log of routing decisions as
// one of the SDK's span processors.
import { createRequire, register, syncBuiltinESMExports } from 'node:module';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { DecisionLog } from './telemetry-log.js';

export interface DemoTracing {
  /** The page's log, fed by the SDK (pass it to `startDemo({ decisions })`). */
  decisions: DecisionLog;
  /** Exports what is left and stops the SDK. */
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry Node SDK if `OTEL_EXPORTER_OTLP_ENDPOINT` is set; else undefined (the
 * demo then registers a tracer provider of its own for the log). Call it before the demo's server
 * module is imported: pg is patched as it loads.
 *
 * The page's polling (`/control/…`) and static files are not traced: only the API (`/api/…`),
 * from the front through to the instance that served it. No instrumentation-express: it would put
 * the routing spans under its own handler spans, where the log, which finds a decision's session
 * on its parent `pgrr.request` span, would no longer see it.
 *
 * @example
 * ```ts
 * const tracing = startTracing(process.env);
 * const { startDemo } = await import('./server.js');
 * const demo = await startDemo({ decisions: tracing?.decisions });
 * ```
 */
export function startTracing(env: Record<string, string | undefined>): DemoTracing | undefined {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT) return undefined;
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  const decisions = new DecisionLog();
  const sdk = new NodeSDK({
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName: 'pg-replica-router-demo' }),
    spanProcessors: [decisions, new BatchSpanProcessor(new OTLPTraceExporter())],
    instrumentations: [
      new HttpInstrumentation({ ignoreIncomingRequestHook: (req) => !req.url?.startsWith('/api/') }),
      new PgInstrumentation({ requireParentSpan: true }), // the cluster controls' queries stay out
    ],
  });
  sdk.start();
  // The front forwards with `import { request } from 'node:http'`. instrumentation-http patches
  // http when it is next required, and a builtin's ESM named exports keep the functions they had
  // until synced: require it now, then sync, so the forwarded call is a client span in the trace.
  createRequire(import.meta.url)('node:http');
  syncBuiltinESMExports();
  return { decisions, shutdown: () => sdk.shutdown() };
}
