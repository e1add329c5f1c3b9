import type { Request, Response } from 'express';
import { createHash } from 'node:crypto';
import { tryParseLsn, type Lsn, type LsnStore, type Router } from '../../lib/index.js';
import type { DecisionLog } from './telemetry-log.js';

/**
 * One sample for the page's chart. Positions are bytes of WAL after the first primary position
 * sampled (`null`: unknown), so nodes at the same position have the same value.
 */
export interface PositionSample {
  seq: number;
  at: number;
  /** The primary's insert position (`router.topology()`, as an end of record: comparable with replay positions). */
  primary: number | null;
  /** Each replica's replay position (`router.topology()`). */
  replicas: Record<string, number | null>;
  /** Each watched session's stored position in the store: its floor. */
  floors: Record<string, number | null>;
}

export interface TimelineOptions {
  /** How often positions are sampled. Default 250 ms (the demo's monitor polls as often). */
  intervalMs?: number;
  /** How much history is kept (the chart's width). Default 30 s. */
  keepMs?: number;
}

/** At most this many sessions' floors are sampled (the ones the page asked for last). */
const MAX_WATCHED = 8;
/** How long the timeline waits for the replicas to replay the setup (the schema) before it starts anyway. */
const SETTLE_MS = 3000;

/**
 * The positions behind the demo's chart: every `intervalMs`, the primary's and replicas' positions
 * as the router's monitor knows them, and the floors of the sessions a page is showing, read from
 * the position store the way the router reads them.
 */
export class PositionTimeline {
  readonly #samples: PositionSample[] = [];
  readonly #watched = new Set<string>();
  readonly #intervalMs: number;
  readonly #keepMs: number;
  #base: Lsn | undefined;
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #sampling: Promise<void> | undefined;
  readonly #createdAt = Date.now();

  constructor(
    private readonly router: Router,
    private readonly store: LsnStore,
    options: TimelineOptions = {},
  ) {
    this.#intervalMs = options.intervalMs ?? 250;
    this.#keepMs = options.keepMs ?? 30_000;
  }

  get keepMs(): number {
    return this.#keepMs;
  }

  start(): this {
    this.#timer ??= setInterval(() => {
      this.#sampling ??= this.#sample().finally(() => (this.#sampling = undefined));
    }, this.#intervalMs).unref();
    return this;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sampling;
  }

  /** Samples this session's floor from now on (the last {@link MAX_WATCHED} asked for). */
  watch(key: string): void {
    this.#watched.delete(key);
    this.#watched.add(key);
    if (this.#watched.size > MAX_WATCHED) this.#watched.delete(this.#watched.values().next().value!);
  }

  samples(afterSeq = 0): PositionSample[] {
    return this.#samples.filter((s) => s.seq > afterSeq);
  }

  /** A position (bigint or `X/Y` text) in the chart's bytes; `null` when unknown or `0/0` (no position). */
  bytes(lsn: Lsn | string | undefined): number | null {
    const value = typeof lsn === 'string' ? tryParseLsn(lsn) : lsn;
    if (value === undefined || value === 0n || this.#base === undefined) return null;
    return Number(value - this.#base);
  }

  async #sample(): Promise<void> {
    const nodes = this.router.topology().nodes;
    const primary = tryParseLsn(nodes.find((n) => n.role === 'primary')?.lsn);
    if (primary === undefined) return; // not polled yet
    if (this.#base === undefined) {
      // The chart starts with every replica at the primary's position, not on the setup's writes.
      const settled = nodes.every((n) => n.role === 'primary' || (tryParseLsn(n.lsn) ?? 0n) >= primary);
      if (!settled && Date.now() - this.#createdAt < SETTLE_MS) return;
      this.#base = primary;
    }
    const keys = [...this.#watched];
    const stored = await Promise.all(keys.map((key) => this.store.get(key).catch(() => undefined)));
    const now = Date.now();
    this.#samples.push({
      seq: ++this.#seq,
      at: now,
      primary: this.bytes(primary),
      replicas: Object.fromEntries(nodes.filter((n) => n.role === 'replica').map((n) => [n.name, this.bytes(n.lsn)])),
      floors: Object.fromEntries(keys.map((key, i) => [key, this.bytes(stored[i]?.lsn)])),
    });
    while (this.#samples[0]!.at < now - this.#keepMs) this.#samples.shift();
  }
}

/** `pgrr.session.hash` as docs/observability.md defines it: the first 16 hex digits of SHA-256 of the session key. */
function sessionHash(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/**
 * `GET /control/positions?session=<key>&since=<sample seq>&after=<decision seq>`: the samples
 * after `since` with that session's floor, and that session's routing decisions after `after`,
 * each placed at its floor.
 */
export function positionsHandler(timeline: PositionTimeline, log: DecisionLog, replicaNames: readonly string[]) {
  return function positions(req: Request, res: Response): void {
    const session = typeof req.query.session === 'string' && req.query.session ? req.query.session : undefined;
    if (session) timeline.watch(session);
    const hash = session && sessionHash(session);
    const decisions = log.entries(Number(req.query.after) || 0);
    res.json({
      now: Date.now(),
      windowMs: timeline.keepMs,
      replicas: replicaNames,
      samples: timeline.samples(Number(req.query.since) || 0).map(({ floors, ...s }) => ({
        ...s,
        floor: session === undefined ? null : (floors[session] ?? null),
      })),
      decisions: decisions
        .filter((d) => d.session !== undefined && d.session === hash)
        .map((d) => ({
          seq: d.seq,
          at: d.at,
          node: d.node,
          role: d.role,
          reason: d.reason,
          statement: d.statement,
          floor: timeline.bytes(d.floor),
        })),
      lastDecision: decisions.at(-1)?.seq ?? (Number(req.query.after) || 0),
    });
  };
}
