import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

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
}

/** The demo's live log: an OpenTelemetry span processor that keeps the last routing spans. */
export class DecisionLog implements SpanProcessor {
  readonly #entries: Decision[] = [];
  #seq = 0;
  constructor(private readonly max = 200) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (span.name !== 'pgrr.route') return;
    const a = span.attributes;
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
    });
    if (this.#entries.length > this.max) this.#entries.splice(0, this.#entries.length - this.max);
  }

  entries(afterSeq = 0): Decision[] {
    return this.#entries.filter((e) => e.seq > afterSeq);
  }

  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}

  /** Registers a tracer provider that feeds this log (call before creating routers). */
  install(): void {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [this] }));
  }
}
