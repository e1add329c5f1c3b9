import { tryParseLsn, type Lsn } from './lsn.js';
import type { LiveSampleCounter, MonitorOptions, MonitorView, Sample } from './monitor-view.js';
import type { NodeConfig } from './nodes.js';
import { answeredPoll, clusterHistory, failedPoll, forget, sameHistory, type NodeState } from './node-state.js';
import { askIdentity, asReplayed, judgeAhead, pollNode, polledReplay, watchNode, type PollRow, type Watched } from './node-poll.js';
import { isConnectionError } from './pg-args.js';
import { sampleSql } from './position-sql.js';
import { serverIdOf } from './server-ids.js';
import { PrimaryHistory } from './primary-history.js';
import type { PositionSample } from './session.js';

export type { NodeState } from './node-state.js';
export type { MonitorOptions, Sample } from './monitor-view.js';

/**
 * Polls every node in the background (one small connection each, short timeouts) and keeps
 * the cached view the routing policy reads. Its connections (see `monitorPoolConfig`) and
 * timers are unreferenced between polls: the monitor never keeps a process alive.
 */
export class Monitor implements MonitorView {
  readonly #nodes = new Map<string, Watched>();
  /** The primary's entry in #nodes. */
  readonly #primary: Watched | undefined;
  readonly #options: MonitorOptions;
  #closed = false;
  /** Recent primary positions and when they were asked for (ring of the last 64). */
  readonly #primaryHistory = new PrimaryHistory();
  /** Bumped on every change of any node's state, so readers can cache what they derive from it. */
  version = 0;
  /** Resolves when every node has been polled once (successfully or not). */
  readonly ready: Promise<void>;
  /** Resolves when the primary has been polled once (answered or not): routing judges floors' histories by it. */
  readonly primaryReady: Promise<void>;

  /** `counted`: told of each live sample sent (shared ones once), for the router's round-trip counters. */
  constructor(
    nodes: readonly NodeConfig[],
    options: MonitorOptions,
    private readonly counted?: LiveSampleCounter,
  ) {
    this.#options = options;
    const all = nodes.map((node) => this.#watch(node));
    this.#primary = all.find((w) => w.state.role === 'primary');
    // The primary first: replicas are judged against its WAL history.
    const primaries = all.filter((w) => w.state.role === 'primary');
    this.primaryReady = Promise.all(primaries.map((w) => this.#first(w))).then(() => {});
    this.ready = this.primaryReady
      .then(() => Promise.all(all.filter((w) => w.state.role !== 'primary').map((w) => this.#first(w))))
      .then(() => {});
  }

  /** A node's own connection and state (see {@link watchNode}), polled from its {@link #first} poll on. */
  #watch(node: NodeConfig): Watched {
    const w = watchNode(
      node,
      this.#options.timeoutMs,
      (err) => this.reportConnectionFailure(node.name, err),
      (x, sentAt) => this.#sampleOnce(x, sentAt),
    );
    this.#nodes.set(node.name, w);
    return w;
  }

  /** A node's first poll; its regular polls start after it (a replica that does not answer holds up nobody else's). */
  #first(w: Watched): Promise<void> {
    return this.#poll(w).then(() => this.#schedule(w));
  }

  /** Starts watching a replica added at run time; resolves after its first poll (answered or not). */
  watch(node: NodeConfig): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return this.#first(this.#watch(node));
  }

  /** Stops watching a removed replica: no more polls; its connection is closed. */
  async unwatch(name: string): Promise<void> {
    const w = this.#nodes.get(name);
    if (!w || w === this.#primary) return;
    this.#nodes.delete(name);
    clearTimeout(w.timer);
    this.version++;
    await w.pool.end().catch(() => {});
  }

  state(name: string): NodeState | undefined {
    return this.#nodes.get(name)?.state;
  }

  states(): NodeState[] {
    return [...this.#nodes.values()].map((w) => w.state);
  }

  /**
   * Samples a node's position now: a replica's replay LSN, the primary's insert LSN. One round
   * trip, shared with a sample already in flight if that one was sent at or after `notBefore`.
   * The result is folded into the cache; `lsn` is undefined when the node cannot answer.
   */
  sample(name: string, notBefore = -Infinity): Promise<Sample> {
    const watched = this.#nodes.get(name);
    if (!watched) return Promise.resolve({ lsn: undefined, sentAt: performance.now() });
    return watched.samples.get(notBefore);
  }

  /** One live sample of `watched`, sent now (`sentAt`); never rejects (`lsn` undefined on failure). */
  async #sampleOnce(watched: Watched, sentAt: number): Promise<Sample> {
    this.counted?.(watched.state.role);
    try {
      const { rows } = await watched.pool.query<{ lsn: string | null; started: string }>(sampleSql(watched.state.role));
      if (watched.started !== undefined && rows[0]?.started !== watched.started) {
        // Restarted since the last poll: it may be behind where it was. Forget, and let the
        // next poll take it up again.
        this.#forget(watched);
        this.version++;
        return { lsn: undefined, sentAt };
      }
      const lsn = asReplayed(watched, tryParseLsn(rows[0]?.lsn ?? undefined));
      if (lsn !== undefined) this.#raisePosition(watched, lsn, sentAt);
      return { lsn, sentAt };
    } catch {
      return { lsn: undefined, sentAt };
    }
  }

  /** A primary position read elsewhere (after a write), sent at `sentAt`: folded into the cache like a sample. */
  notePrimaryPosition(lsn: Lsn, sentAt: number): Lsn {
    const primary = this.#primary;
    if (!primary) return lsn;
    const position = asReplayed(primary, lsn)!;
    this.#raisePosition(primary, position, sentAt);
    return position;
  }

  noteReplayPosition(name: string, lsn: Lsn, sentAt: number, started: string | undefined): boolean {
    const w = this.#nodes.get(name);
    const same = w?.state.role === 'replica' && w.state.status === 'up' && started !== undefined && started === w.started;
    if (same) this.#raisePosition(w, lsn, sentAt);
    return same;
  }

  writtenAfter(lsn: Lsn): number | undefined {
    return this.#primaryHistory.writtenAfter(lsn);
  }

  primarySampleSince(since: number): PositionSample | undefined {
    return this.#primaryHistory.sampleSince(since);
  }

  serverIdOf(name: string): string | undefined {
    return this.#nodes.get(name)?.state.serverId;
  }

  nodeOfServer(id: string): string | undefined {
    for (const { state } of this.#nodes.values()) if (state.serverId === id) return state.name;
    return undefined;
  }

  /** The primary's WAL history, as far as known (see {@link clusterHistory}). */
  primaryIdentity(): { systemId: string | undefined; timeline: number | undefined } {
    const primary = this.#primaryState();
    return { systemId: primary?.systemId ?? clusterHistory(this.states()).systemId, timeline: primary?.timeline };
  }

  /** A query on this node failed with a connection error: take it out of rotation now. */
  reportConnectionFailure(name: string, error: unknown): void {
    const watched = this.#nodes.get(name);
    const state = watched?.state;
    if (!watched || !state || state.status === 'not-replica') return;
    this.#forget(watched);
    this.version++;
    state.status = 'down';
    state.successes = 0;
    state.failures = Math.max(state.failures, this.#options.downAfter);
    state.lastError = error instanceof Error ? error.message : String(error);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const watched of this.#nodes.values()) clearTimeout(watched.timer);
    await Promise.all([...this.#nodes.values()].map((w) => w.pool.end().catch(() => {})));
  }

  #schedule(watched: Watched): void {
    if (this.#closed || this.#nodes.get(watched.state.name) !== watched) return; // closed, or the node was removed
    const delay = this.#options.intervalMs * (0.8 + Math.random() * 0.4);
    watched.timer = setTimeout(() => {
      void this.#poll(watched).then(() => this.#schedule(watched));
    }, delay);
    watched.timer.unref();
  }

  #poll(watched: Watched): Promise<void> {
    watched.inflight ??= this.#pollOnce(watched).finally(() => {
      watched.inflight = undefined;
    });
    return watched.inflight;
  }

  async #pollOnce(watched: Watched): Promise<void> {
    try {
      await this.#pollAndUpdate(watched);
    } finally {
      this.version++;
    }
  }

  async #pollAndUpdate(watched: Watched): Promise<void> {
    if (this.#closed) return;
    const state = watched.state;
    let row: PollRow | undefined;
    const sentAt = performance.now();
    try {
      row = await pollNode(watched);
      if (!watched.systemIdAsked) await askIdentity(watched);
    } catch (err) {
      state.lastError = err instanceof Error ? err.message : String(err);
    }
    state.lastPollAt = Date.now();
    if (!row) {
      // A server that comes back may have restarted behind where it was (crash recovery, a
      // rebuilt replica): forget its position until it answers again.
      this.#forget(watched);
      watched.systemIdAsked = false;
      failedPoll(state, this.#options.downAfter);
      return;
    }
    state.failures = 0;
    state.successes++;
    if (watched.processId !== undefined) state.pooled = Number(row.backend_pid) !== watched.processId;
    state.lastError = undefined;
    if (state.role === 'replica' && !row.in_recovery) {
      // Promoted (or misconfigured: its id tells the primary's URL, see nodeVerdict). Never route to it again.
      state.status = 'not-replica';
      state.serverId = serverIdOf(state.systemId, row.started, row.addr, row.port);
      return;
    }
    if (state.status === 'not-replica') return;
    const timeline = row.timeline ?? undefined;
    if (watched.started !== row.started || (state.timeline !== undefined && timeline !== undefined && timeline !== state.timeline)) {
      // Restarted, or on a new WAL history: the cached position may be too high or not comparable.
      this.#forget(watched);
      watched.started = row.started;
    }
    state.timeline = timeline;
    state.serverId = serverIdOf(state.systemId, row.started, row.addr, row.port);
    // Measured under a verdict too: the next primary poll re-judges it (see judgeAhead).
    if (state.role === 'replica') watched.polled = polledReplay(row);
    if (state.role === 'replica' && !sameHistory(state, this.#primaryState())) {
      state.status = 'other-history';
      return;
    }
    answeredPoll(state, this.#options.upAfter);

    if (state.role === 'replica') {
      state.receiveLsn = tryParseLsn(row.receive ?? undefined);
      const age = row.replay_age_ms === null ? Number.NaN : Number(row.replay_age_ms);
      if (Number.isFinite(age)) watched.replayedAt = sentAt - Math.max(0, age);
    }
    const position = asReplayed(watched, tryParseLsn((state.role === 'primary' ? row.insert : row.replay) ?? undefined));
    if (position !== undefined) this.#raisePosition(watched, position, sentAt);
    if (state.role !== 'primary') return; // (#raisePosition bumped `version` for what follows)
    for (const other of this.#nodes.values()) if (!judgeAhead(other, watched, position, sentAt)) this.#updateLag(other);
  }

  #forget(watched: Watched): void {
    forget(watched.state);
    watched.replayedAt = undefined;
    if (watched.state.role === 'primary') this.#primaryHistory.clear();
  }

  #primaryState(): NodeState | undefined {
    return this.#primary?.state;
  }

  #raisePosition(watched: Watched, lsn: Lsn, sentAt: number): void {
    const state = watched.state;
    // Positions only move forward on one server; never let a slow answer lower the cache.
    if (state.role === 'primary') {
      if (state.insertLsn === undefined || lsn > state.insertLsn) state.insertLsn = lsn;
      this.#primaryHistory.note(lsn, sentAt);
    } else if (state.replayLsn === undefined || lsn > state.replayLsn) {
      state.replayLsn = lsn;
      if (sentAt > (state.advancedAt ?? -Infinity)) state.advancedAt = sentAt;
    }
    if (sentAt > state.sampledAt) state.sampledAt = sentAt;
    this.#updateLag(watched);
    this.version++;
  }

  /** A replica's lag behind the primary, in bytes and in time (from positions: any role can read them). */
  #updateLag(watched: Watched): void {
    const state = watched.state;
    if (state.role !== 'replica' || state.replayLsn === undefined) return;
    const primaryLsn = this.#primaryState()?.insertLsn;
    if (primaryLsn !== undefined) state.lagBytes = primaryLsn > state.replayLsn ? Number(primaryLsn - state.replayLsn) : 0;
    const { freshAt, lagMs } = this.#primaryHistory.freshness(state.replayLsn, state.sampledAt, watched.replayedAt);
    state.freshAt = freshAt;
    state.lagMs = lagMs;
  }
}
