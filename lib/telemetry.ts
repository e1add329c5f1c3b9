import { createHash } from 'node:crypto';
import type pg from 'pg';
import { levelName, type Consistency } from './consistency.js';
import type { Route } from './route.js';
import { formatLsn, type Lsn } from './lsn.js';
import type { MonitorView } from './monitor-view.js';
import type { NodeConfig } from './nodes.js';
import { otelApi, tracingActive, type Attributes, type OtelApi, type OtelSpan as Span } from './otel.js';
import type { GuardedStore } from './stores/guard.js';
import { decisionOf, type DebugSink } from './debug-log.js';

const NAME = 'pg-replica-router';
const VERSION = '0.1.0';

/** Span attribute keys: stable semantic conventions where they exist, `pgrr.*` for the decision. */
export const ATTR = {
  dbSystem: 'db.system.name',
  dbNamespace: 'db.namespace',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  node: 'pgrr.node',
  role: 'pgrr.node.role',
  reason: 'pgrr.reason',
  consistency: 'pgrr.consistency',
  statement: 'pgrr.statement.kind',
  floor: 'pgrr.floor_lsn',
  replay: 'pgrr.replica.replay_lsn',
  waitMs: 'pgrr.wait_ms',
  fallback: 'pgrr.fallback',
  retried: 'pgrr.retried',
  retry: 'pgrr.retry',
  sessionHash: 'pgrr.session.hash',
  sessionSource: 'pgrr.session.source',
  tokenIn: 'pgrr.token.in',
  tokenOut: 'pgrr.token.out',
  storeOutcome: 'pgrr.store.outcome',
  rejection: 'pgrr.token.rejection',
  clientLevel: 'pgrr.client_level.outcome',
  errorType: 'error.type',
} as const;

/** Reasons a read ended up on the primary although it could have used a replica. */
const FALLBACK = new Set(['no-replica', 'too-stale', 'replica-behind', 'floor-unknown', 'wrote-in-scope']);

/** Where a node is (for `server.address`, `server.port`, `db.namespace`). */
function endpoint(config: pg.PoolConfig): { host?: string; port?: number; database?: string } {
  const result: { host?: string; port?: number; database?: string } = {
    host: config.host,
    port: config.port === undefined ? undefined : Number(config.port),
    database: config.database,
  };
  if (config.connectionString) {
    try {
      const url = new URL(config.connectionString);
      result.host ??= decodeURIComponent(url.hostname) || undefined;
      result.port ??= url.port ? Number(url.port) : 5432;
      result.database ??= decodeURIComponent(url.pathname.slice(1)) || undefined;
    } catch {
      // not a URL (e.g. a keyword/value string): leave the attributes out
    }
  }
  return result;
}

/** A hash of a session key for spans (never the raw id or cookie). */
export function sessionHash(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/**
 * Spans and metrics. With no `@opentelemetry/api` installed, or `telemetry: false`, every method
 * is a no-op; with the API but no SDK, spans are non-recording and nothing is built for them.
 */
export class Telemetry {
  readonly #api: OtelApi | null;
  readonly #tracer: ReturnType<OtelApi['trace']['getTracer']> | undefined;
  readonly #decisions: { add(value: number, attributes?: Attributes): void } | undefined;
  readonly #waits: { record(value: number, attributes?: Attributes): void } | undefined;
  readonly #storeErrors: { add(value: number, attributes?: Attributes): void } | undefined;
  readonly #tokenRejections: { add(value: number, attributes?: Attributes): void } | undefined;
  readonly #clientLevels: { add(value: number, attributes?: Attributes): void } | undefined;
  readonly #nodeAttributes = new Map<string, Attributes>();
  /** Whether a tracing SDK is registered, asked again every 1000 statements (registration is rare). */
  #tracing = false;
  #untilRecheck = 0;
  /** Metric attribute sets, made once per (role, reason): nothing is allocated per statement. */
  readonly #decisionAttributes = new Map<string, Attributes>();

  /** The opt-in debug log of decisions (`createRouter({ debug })`). */
  readonly #debug: DebugSink;

  constructor(
    enabled: boolean,
    nodes: readonly NodeConfig[],
    monitor: MonitorView,
    store: Pick<GuardedStore, 'state'>,
    debug: DebugSink = undefined,
  ) {
    this.#debug = debug;
    const api = enabled ? otelApi() : null;
    this.#api = api;
    if (!api) return;
    this.#tracer = api.trace.getTracer(NAME, VERSION);
    for (const node of nodes) this.addNode(node);
    // Metrics need a meter provider registered before the router is created (as the Node SDK
    // does at start-up); without one, no instruments are made and nothing is counted.
    if (api.metrics.getMeterProvider().constructor.name === 'NoopMeterProvider') return;
    const meter = api.metrics.getMeter(NAME, VERSION);
    this.#decisions = meter.createCounter('pgrr.routing.decisions', { description: 'Routing decisions, by target role and reason' });
    this.#waits = meter.createHistogram('pgrr.routing.wait.duration', {
      unit: 's',
      description: 'Time reads spent waiting for a replica to catch up',
    });
    this.#storeErrors = meter.createCounter('pgrr.store.errors', {
      description: 'Position store calls that timed out, failed, or were not made (circuit open)',
    });
    this.#tokenRejections = meter.createCounter('pgrr.tokens.rejected', { description: 'Consistency tokens ignored, by cause' });
    this.#clientLevels = meter.createCounter('pgrr.client_levels', {
      description: 'Requests whose client asked for a consistency level, honoured or refused (clientLevels)',
    });
    const lagBytes = meter.createObservableGauge('pgrr.replica.lag.bytes', {
      unit: 'By',
      description: "Replica replay lag behind the primary's insert position",
    });
    const lagSeconds = meter.createObservableGauge('pgrr.replica.lag.seconds', {
      unit: 's',
      description: 'Replica replay lag in time (0 when everything received is replayed)',
    });
    const up = meter.createObservableGauge('pgrr.node.up', { description: '1 when the node is in rotation, else 0' });
    const circuit = meter.createObservableGauge('pgrr.store.circuit.open', {
      description: "1 while the store's circuit breaker is open or half-open, else 0",
    });
    meter.addBatchObservableCallback(
      (observer) => {
        for (const state of monitor.states()) {
          const attributes = { [ATTR.node]: state.name, [ATTR.role]: state.role };
          observer.observe(up, state.status === 'up' ? 1 : 0, attributes);
          if (state.role !== 'replica') continue;
          if (state.lagBytes !== undefined) observer.observe(lagBytes, state.lagBytes, attributes);
          if (state.lagMs !== undefined) observer.observe(lagSeconds, state.lagMs / 1000, attributes);
        }
        observer.observe(circuit, store.state === 'closed' ? 0 : 1);
      },
      [lagBytes, lagSeconds, up, circuit],
    );
  }
  /** The span attributes of a node's server (every node at start; a replica added later). */
  addNode(node: NodeConfig): void {
    if (!this.#api) return;
    const where = endpoint(node.config);
    const attributes: Attributes = { [ATTR.dbSystem]: 'postgresql', [ATTR.node]: node.name, [ATTR.role]: node.role };
    if (where.database) attributes[ATTR.dbNamespace] = where.database;
    if (where.host) attributes[ATTR.serverAddress] = where.host;
    if (where.port) attributes[ATTR.serverPort] = where.port;
    this.#nodeAttributes.set(node.name, attributes);
  }

  /**
   * Opens the span for a routed statement (or a checked-out client's binding) and counts the
   * decision. Undefined when nothing records spans.
   */
  startRouteSpan(
    route: Route,
    statement: string,
    level: Consistency,
    replayLsn: () => bigint | undefined,
    retry: boolean,
  ): Span | undefined {
    const reason = route.decision.reason;
    const role = route.node.role;
    if (this.#decisions) {
      const key = `${role}:${reason}`;
      let attributes = this.#decisionAttributes.get(key);
      if (!attributes) this.#decisionAttributes.set(key, (attributes = { [ATTR.role]: role, [ATTR.reason]: reason }));
      this.#decisions.add(1, attributes);
    }
    if (route.waitedMs > 0) this.#waits?.record(route.waitedMs / 1000, { [ATTR.reason]: reason });
    if (this.#debug) this.#logDecision(route, statement, level);
    const tracer = this.#tracer;
    if (!tracer || !this.#tracingActive()) return undefined;
    const span = tracer.startSpan('pgrr.route', { kind: this.#api!.SpanKind.INTERNAL });
    if (!span.isRecording()) return undefined;
    span.setAttributes(this.#nodeAttributes.get(route.node.name) ?? {});
    span.setAttributes({
      [ATTR.reason]: reason,
      [ATTR.consistency]: levelName(level),
      [ATTR.statement]: statement,
      [ATTR.floor]: formatLsn(route.floor),
      [ATTR.waitMs]: route.waitedMs,
      [ATTR.fallback]: role === 'primary' && FALLBACK.has(reason),
      [ATTR.retry]: retry,
    });
    const replay = role === 'replica' ? replayLsn() : undefined; // looked up only for a recording span
    if (replay !== undefined) span.setAttribute(ATTR.replay, formatLsn(replay));
    return span;
  }

  /** The replay position a read checked in its own flight: the span's, in place of the cached one it started with. */
  replayChecked(span: Span | undefined, lsn: Lsn): void {
    span?.setAttribute(ATTR.replay, formatLsn(lsn));
  }

  #logDecision(route: Route, statement: string, level: Consistency): void {
    try {
      this.#debug!(decisionOf(route, statement, level));
    } catch {
      // a failing debug sink never breaks a statement
    }
  }

  #tracingActive(): boolean {
    if (--this.#untilRecheck < 0) {
      this.#tracing = tracingActive(this.#api!);
      this.#untilRecheck = 1000;
    }
    return this.#tracing;
  }

  /** Runs `fn` with `span` as the active span (so the pg CLIENT span nests under it). */
  within<T>(span: Span | undefined, fn: () => T): T {
    if (!span || !this.#api) return fn();
    const api = this.#api;
    return api.context.with(api.trace.setSpan(api.context.active(), span), fn);
  }

  /** Ends a route span. */
  end(span: Span | undefined, error?: unknown, retried = false): void {
    if (!span) return;
    if (retried) span.setAttribute(ATTR.retried, true);
    if (error !== undefined) {
      const err = error instanceof Error ? error : new Error(String(error));
      span.recordException(err);
      span.setAttribute(ATTR.errorType, (err as { code?: string }).code ?? err.name);
      span.setStatus({ code: this.#api!.SpanStatusCode.ERROR, message: err.message });
    }
    span.end();
  }

  storeError(kind: string): void {
    this.#storeErrors?.add(1, { [ATTR.errorType]: kind });
  }

  tokenRejected(cause: string): void {
    this.#tokenRejections?.add(1, { [ATTR.rejection]: cause });
  }

  clientLevel(honoured: boolean): void {
    this.#clientLevels?.add(1, { [ATTR.clientLevel]: honoured ? 'honoured' : 'refused' });
  }

  /** The request span of the Express middleware (session side). */
  startRequestSpan(attributes: Attributes): Span | undefined {
    if (!this.#tracer || !this.#tracingActive()) return undefined;
    const span = this.#tracer.startSpan('pgrr.request', { kind: this.#api!.SpanKind.INTERNAL });
    if (!span?.isRecording()) return undefined;
    span.setAttributes(attributes);
    return span;
  }
}
