import { createRequire } from 'node:module';

// The subset of @opentelemetry/api this library uses, declared here so that its type
// declarations never reference the optional package.

export type Attributes = Record<string, string | number | boolean>;
export type OtelContext = object;

export interface OtelSpan {
  isRecording(): boolean;
  setAttribute(key: string, value: string | number | boolean): unknown;
  setAttributes(attributes: Attributes): unknown;
  recordException(exception: Error): void;
  setStatus(status: { code: number; message?: string }): unknown;
  end(): void;
}

export interface OtelInstrument {
  add?(value: number, attributes?: Attributes): void;
  record?(value: number, attributes?: Attributes): void;
}

interface BaggageEntry {
  value: string;
}
interface Baggage {
  getEntry(key: string): BaggageEntry | undefined;
  setEntry(key: string, entry: BaggageEntry): Baggage;
}

export interface OtelApi {
  ROOT_CONTEXT: OtelContext;
  SpanKind: { readonly INTERNAL: number };
  SpanStatusCode: { readonly ERROR: number };
  context: {
    active(): OtelContext & { setValue(key: symbol, value: unknown): OtelContext };
    with<T>(context: OtelContext, fn: () => T): T;
  };
  trace: {
    getTracer(name: string, version?: string): { startSpan(name: string, options?: { kind?: number }): OtelSpan };
    setSpan(context: OtelContext, span: OtelSpan): OtelContext;
    getTracerProvider(): { getDelegate?(): object };
  };
  metrics: {
    getMeterProvider(): object;
    getMeter(
      name: string,
      version?: string,
    ): {
      createCounter(name: string, options?: { description?: string; unit?: string }): { add(value: number, attributes?: Attributes): void };
      createHistogram(
        name: string,
        options?: { description?: string; unit?: string },
      ): { record(value: number, attributes?: Attributes): void };
      createObservableGauge(name: string, options?: { description?: string; unit?: string }): object;
      addBatchObservableCallback(
        callback: (observer: { observe(instrument: object, value: number, attributes?: Attributes): void }) => void,
        instruments: object[],
      ): void;
    };
  };
  propagation: {
    getBaggage(context: OtelContext): Baggage | undefined;
    setBaggage(context: OtelContext, baggage: Baggage): OtelContext;
    createBaggage(): Baggage;
    extract(context: OtelContext, carrier: unknown): OtelContext;
  };
}

let loaded: OtelApi | null | undefined;

/** `@opentelemetry/api` if the application has it installed (an optional peer), else null. */
export function otelApi(): OtelApi | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('@opentelemetry/api') as OtelApi;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/** The baggage entry that carries a consistency token across services. */
export const BAGGAGE_KEY = 'pgrr.token';

// @opentelemetry/core's suppressTracing() key: api.createContextKey() makes Symbol.for(description).
const SUPPRESS_TRACING = Symbol.for('OpenTelemetry SDK Context Key SUPPRESS_TRACING');

/**
 * Runs `fn` with tracing suppressed, so that instrumentations (instrumentation-pg) record no spans
 * for the router's own background work (monitor polls), which would otherwise flood traces.
 */
export function untraced<T>(fn: () => T): T {
  const api = otelApi();
  if (!api) return fn();
  return api.context.with(api.context.active().setValue(SUPPRESS_TRACING, true), fn);
}

/**
 * False while no tracing SDK is registered (the global provider still delegates to the no-op
 * one): then not even a non-recording span is made. Cheap enough to ask per statement, so an SDK
 * registered later is picked up.
 */
export function tracingActive(api: OtelApi): boolean {
  const delegate = api.trace.getTracerProvider().getDelegate?.();
  return delegate === undefined || delegate.constructor.name !== 'NoopTracerProvider';
}
