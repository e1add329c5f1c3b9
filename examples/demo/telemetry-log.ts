import { context, trace, type Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, type ReadableSpan, type Span, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

/** One routing decision, as the demo page shows it (read from the router's spans). */
export interface Decision {
  /** Increasing: the page asks for the entries after the last one it has. */
  seq: number;
  at: number;
  node: string;
  role: string;
  reason: string;
  statement: string;
  floor: string;
  replay: string | undefined;
  waitMs: number;
  fallback: boolean;
  /** `pgrr.session.hash` of the request it was made in (first 16 hex digits of SHA-256 of the session key). */
  session: string | undefined;
}

/**
 * The demo's live log: an OpenTelemetry span processor that keeps the last routing spans, each
 * with the session of the `pgrr.request` span it ran under.
 */
export class DecisionLog implements SpanProcessor {
  readonly #entries: Decision[] = [];
  /** Request spans still open, by span id: their session hash is set once the identity is known. */
  readonly #requests = new Map<string, Span>();
  #seq = 0;
  constructor(private readonly max = 400) {}

  onStart(span: Span, _parent: Context): void {
    if (span.name === 'pgrr.request') this.#requests.set(span.spanContext().spanId, span);
  }

  onEnd(span: ReadableSpan): void {
    if (span.name === 'pgrr.request') return void this.#requests.delete(span.spanContext().spanId);
    if (span.name !== 'pgrr.route') return;
    const a = span.attributes;
    // An attempt retried elsewhere (a lost connection; a check in flight that found its replica
    // behind, its answer dropped) is not where the statement ran: its retry is logged.
    if (a['pgrr.retried'] === true) return;
    const request = span.parentSpanContext && this.#requests.get(span.parentSpanContext.spanId);
    const session = request?.attributes['pgrr.session.hash'];
    this.#entries.push({
      seq: ++this.#seq,
      at: Date.now(),
      node: String(a['pgrr.node']),
      role: String(a['pgrr.node.role']),
      reason: String(a['pgrr.reason']),
      statement: String(a['pgrr.statement.kind']),
      floor: String(a['pgrr.floor_lsn']),
      replay: a['pgrr.replica.replay_lsn'] === undefined ? undefined : String(a['pgrr.replica.replay_lsn']),
      waitMs: Number(a['pgrr.wait_ms'] ?? 0),
      fallback: a['pgrr.fallback'] === true,
      session: session === undefined ? undefined : String(session),
    });
    if (this.#entries.length > this.max) this.#entries.splice(0, this.#entries.length - this.max);
  }

  entries(afterSeq = 0): Decision[] {
    return this.#entries.filter((e) => e.seq > afterSeq);
  }

  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}

  /**
   * Registers a tracer provider that feeds this log, and a context manager so that routing spans
   * nest under their request's span (call before creating routers).
   */
  install(): void {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [this] }));
  }
}
