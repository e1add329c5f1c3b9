import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createRequire } from 'node:module';

/** A metric reader the test collects from on demand. */
class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/**
 * What an application with the OpenTelemetry Node SDK has: tracer and meter providers, a context
 * manager, and @opentelemetry/instrumentation-pg. Call before creating routers.
 */
export function installOtel() {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(tracerProvider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(meterProvider);
  const pgInstrumentation = new PgInstrumentation();
  pgInstrumentation.setTracerProvider(tracerProvider);
  pgInstrumentation.enable();
  // pg is CommonJS: requiring it after enable() patches the one shared module instance.
  createRequire(import.meta.url)('pg');
  return {
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
    collect: async (): Promise<ResourceMetrics> => (await reader.collect()).resourceMetrics,
    async shutdown() {
      pgInstrumentation.disable();
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
      trace.disable();
      metrics.disable();
      context.disable();
    },
  };
}

/** Finished spans as an indented tree (children under their parent), for assertions and docs. */
export function spanTree(spans: readonly ReadableSpan[], describe: (span: ReadableSpan) => string = (s) => s.name): string {
  const byParent = new Map<string | undefined, ReadableSpan[]>();
  const ids = new Set(spans.map((s) => s.spanContext().spanId));
  for (const span of spans) {
    const parent = span.parentSpanContext?.spanId;
    const key = parent && ids.has(parent) ? parent : undefined;
    byParent.set(key, [...(byParent.get(key) ?? []), span]);
  }
  const lines: string[] = [];
  const walk = (parent: string | undefined, depth: number) => {
    const children = (byParent.get(parent) ?? []).sort(
      (a, b) => (a.startTime[0] - b.startTime[0]) * 1e9 + (a.startTime[1] - b.startTime[1]),
    );
    for (const child of children) {
      lines.push(`${'  '.repeat(depth)}${describe(child)}`);
      walk(child.spanContext().spanId, depth + 1);
    }
  };
  walk(undefined, 0);
  return lines.join('\n');
}

/** The data points of one metric, as [attributes, value] pairs. */
export function points(resource: ResourceMetrics, name: string): Array<[Record<string, unknown>, number]> {
  const out: Array<[Record<string, unknown>, number]> = [];
  for (const scope of resource.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue;
      for (const point of metric.dataPoints) {
        const value = typeof point.value === 'number' ? point.value : ((point.value as { sum?: number; count?: number }).count ?? 0);
        out.push([point.attributes as Record<string, unknown>, value]);
      }
    }
  }
  return out;
}
