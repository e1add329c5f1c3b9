import { isMonotonic, type Consistency } from './consistency.js';
import type { Counters } from './counters.js';
import type { Lsn } from './lsn.js';
import type { MonitorView } from './monitor-view.js';
import type { NodePool, NodePools } from './nodes.js';
import type { Route, RoutedStatement } from './route.js';
import { decide, type Decision, type ReplicaView } from './routing-policy.js';
import type { Scope } from './scopes.js';
import type { PositionSample, Session } from './session.js';
import type { SessionStore } from './session-store.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The least a round of live checks waits for the other nodes once one answered behind (ms). */
const ROUND_GRACE_MS = 2;

export interface PlannerOptions {
  /** The router's default level. */
  readonly consistency: Consistency;
  /** How long a read may wait for a replica (ms). */
  readonly maxWaitMs: number;
}

/**
 * Plans where a statement runs: (statement, scope) → route. Synchronous when no I/O is needed
 * ({@link planSync}); otherwise ({@link plan}) it loads the session floor, checks the replicas
 * that may be ready live, in parallel, when none is known to be (waiting up to `maxWaitMs`), and before a
 * read leaves the node of the session's uncovered reads, covers them with a position of that node
 * (or of the primary) sampled after them — monotonic reads.
 */
export class RoutePlanner {
  #viewsCache: { version: number; views: ReplicaView[] } | undefined;

  constructor(
    readonly nodes: NodePools,
    readonly monitor: MonitorView,
    readonly sessions: SessionStore,
    readonly counters: Counters,
    readonly options: PlannerOptions,
  ) {}

  /** The level a scope reads at. */
  levelOf(scope: Scope): Consistency {
    return scope.consistency ?? this.options.consistency;
  }

  /**
   * The hot path: a route without any I/O when one can be had (floor known, a replica known
   * ready, no move away from the session's node). Undefined when {@link plan} must do I/O first.
   */
  planSync(statement: RoutedStatement, scope: Scope, preferred?: string, exclude?: ReadonlySet<string>): Route | undefined {
    const level = this.levelOf(scope);
    const session = scope.session;
    const needsFloor = this.#needsFloor(statement, level, scope);
    if (needsFloor) {
      if (session.key !== undefined && !this.sessions.loadNow(session)) return undefined;
      if ((session.key === undefined && session.writePending) || session.resync || session.positioning) return undefined;
    }
    const monotonic = needsFloor && covers(level, session);
    const decision = this.#decide(
      statement,
      level,
      scope,
      preferred ?? (monotonic ? this.#sticky(session) : undefined),
      undefined,
      exclude,
    );
    if (decision.target === 'check' || (monotonic && this.#moves(session, decision))) return undefined;
    return this.#toRoute(decision, session.floor, 0);
  }

  /** Plans a statement, doing whatever I/O the decision needs (see the class). */
  async plan(statement: RoutedStatement, scope: Scope, preferred?: string, exclude?: ReadonlySet<string>): Promise<Route> {
    const level = this.levelOf(scope);
    const session = scope.session;
    const needsFloor = this.#needsFloor(statement, level, scope);
    if (needsFloor) await this.sessions.floorFor(session);
    const monotonic = needsFloor && covers(level, session);

    let checked: Set<string> | undefined;
    let waitedMs = 0;
    for (let covers = 0; ;) {
      const decision = this.#decide(
        statement,
        level,
        scope,
        preferred ?? (monotonic ? this.#sticky(session) : undefined),
        checked,
        exclude,
      );
      if (decision.target === 'check') {
        waitedMs += await this.#checkLive(decision.nodes, session.floor);
        checked = new Set(decision.nodes);
        continue;
      }
      if (monotonic && this.#moves(session, decision)) {
        if (covers++ < 2 && (await this.#cover(session))) {
          checked = undefined;
          continue;
        }
        // Could not sample the old node or the primary: the primary itself is always monotonic.
        return { node: this.nodes.primary, decision: { target: 'primary', reason: 'replica-behind' }, floor: session.floor, waitedMs };
      }
      return this.#toRoute(decision, session.floor, waitedMs)!;
    }
  }

  #needsFloor(statement: RoutedStatement, level: Consistency, scope: Scope): boolean {
    return statement === 'read' && !scope.forcePrimary && level !== 'primary' && level !== 'eventual' && this.nodes.replicas.size > 0;
  }

  /** The replica the session's uncovered reads were on, to stay there. */
  #sticky(session: Session): string | undefined {
    const replica = session.stickyReplica;
    return replica !== undefined && this.nodes.replicas.has(replica) ? replica : undefined;
  }

  /** Would this decision read a replica other than the node of the session's uncovered reads? */
  #moves(session: Session, decision: Decision): boolean {
    return decision.target === 'replica' && session.movesTo(decision.node);
  }

  /**
   * Samples `nodes` live, in parallel, until one is at or past `floor` (each sample raises the
   * monitor's cache, which the next decision reads) or all answered behind; then again every few
   * ms until `maxWaitMs` has passed. Returns the time waited.
   */
  async #checkLive(nodes: readonly string[], floor: Lsn): Promise<number> {
    const started = performance.now();
    const deadline = started + this.options.maxWaitMs;
    for (let sentAt = started; ; sentAt = performance.now()) {
      if (await this.#anyReady(nodes, floor, sentAt)) break;
      if (performance.now() >= deadline) break;
      await sleep(Math.min(10, Math.max(1, deadline - performance.now())));
    }
    return this.options.maxWaitMs > 0 ? Math.round(performance.now() - started) : 0;
  }

  /**
   * One live sample of each of `nodes` (taken after `sentAt`): true as soon as one is at or past
   * `floor`; false once all answered behind, or a little after the first did (twice its round
   * trip, at least {@link ROUND_GRACE_MS}): a node that does not answer holds nobody up.
   */
  #anyReady(nodes: readonly string[], floor: Lsn, sentAt: number): Promise<boolean> {
    return new Promise((resolve) => {
      let pending = nodes.length;
      let grace: NodeJS.Timeout | undefined;
      const done = (ready: boolean) => {
        clearTimeout(grace);
        resolve(ready);
      };
      for (const node of nodes) {
        void this.monitor.sample(node, sentAt).then(({ lsn }) => {
          if (lsn !== undefined && lsn >= floor) return done(true);
          if (--pending === 0) return done(false);
          grace ??= setTimeout(() => done(false), Math.max(ROUND_GRACE_MS, 2 * (performance.now() - sentAt)));
        });
      }
    });
  }

  /**
   * Covers the session's uncovered reads: raises the floor to a position of their node (or of the
   * primary, which is ahead of every replica of its history) sampled after they ended. Free when
   * the monitor's cache holds such a sample. False when no sample could be had.
   */
  async #cover(session: Session): Promise<boolean> {
    const since = session.lastReadEndedAt;
    const sample = (await this.#sampleReplicasRead(session)) ?? (await this.#samplePrimaryAfter(since, session.fenced));
    if (!sample) return false;
    session.cover(sample, this.monitor.primaryIdentity());
    return true;
  }

  /** The highest position of the replicas the uncovered reads ran on, each sampled after them. */
  async #sampleReplicasRead(session: Session): Promise<PositionSample | undefined> {
    const since = session.lastReadEndedAt;
    const reads = session.uncovered;
    if (reads === undefined || reads === 'primary') return undefined;
    // Only replicas up and not reset since those reads (a restarted replica may replay from
    // behind what they saw); otherwise the primary, which is ahead of them all.
    const usable = (name: string) => {
      const state = this.monitor.state(name);
      return this.nodes.replicas.has(name) && state?.status === 'up' && state.resetAt < since;
    };
    if (!reads.every(usable)) return undefined;
    const samples = await Promise.all(
      reads.map(async (name) => {
        const cached = this.monitor.state(name);
        if (cached?.replayLsn !== undefined && cached.sampledAt >= since) return { lsn: cached.replayLsn, sentAt: cached.sampledAt };
        const live = await this.monitor.sample(name, since);
        return live.lsn === undefined ? undefined : { lsn: live.lsn, sentAt: live.sentAt };
      }),
    );
    if (!samples.every((x) => x !== undefined) || !reads.every(usable)) return undefined;
    return samples.reduce((a, b) => ({ lsn: b.lsn > a.lsn ? b.lsn : a.lsn, sentAt: Math.min(a.sentAt, b.sentAt) }));
  }

  /**
   * The earliest primary position known to be taken after `since`: the lowest floor that covers
   * reads before it (a later, higher one would make replicas catch up for nothing); else one
   * sampled now.
   */
  async #samplePrimaryAfter(since: number, fenced: boolean): Promise<PositionSample | undefined> {
    // A write whose outcome is unknown may still commit: only a position after its backend is gone covers it.
    const fences = this.nodes.fences;
    if (fenced && fences.pending && !(await fences.settle())) return undefined;
    if (fenced) since = Math.max(since, fences.clearedAt);
    const known = this.monitor.primarySampleSince(since);
    if (known) return known;
    const live = await this.monitor.sample('primary', since);
    return live.lsn === undefined ? undefined : { lsn: live.lsn, sentAt: live.sentAt };
  }

  #decide(
    statement: RoutedStatement,
    level: Consistency,
    scope: Scope,
    preferred: string | undefined,
    checked: Set<string> | undefined,
    exclude: ReadonlySet<string> | undefined,
  ): Decision {
    const session = scope.session;
    return decide({
      statement,
      level,
      forcePrimary: scope.forcePrimary,
      floor: session.floor,
      floorUnknown: session.floorUnknown,
      writePending: session.key !== undefined && session.writePending,
      replicas: this.#views(),
      preferred,
      checked,
      exclude,
      floorAgeMs: this.#floorAge,
      maxWaitMs: this.options.maxWaitMs,
      now: performance.now(),
    });
  }

  /** How long ago, at most, `floor` was written (from the primary positions seen recently). */
  readonly #floorAge = (floor: Lsn): number | undefined => {
    const after = this.monitor.writtenAfter(floor);
    return after === undefined ? undefined : performance.now() - after;
  };

  #toRoute(decision: Decision, floor: Lsn, waitedMs: number): Route | undefined {
    let node: NodePool | undefined;
    if (decision.target === 'primary') node = this.nodes.primary;
    else if (decision.target === 'replica') node = this.nodes.replicas.get(decision.node);
    if (!node || decision.target === 'check') return undefined;
    return { node, decision, floor, waitedMs };
  }

  /** The policy's view of the replicas, rebuilt only when the monitor's state changed. */
  #views(): ReplicaView[] {
    const version = this.monitor.version;
    if (this.#viewsCache?.version === version) return this.#viewsCache.views;
    const views: ReplicaView[] = [];
    for (const name of this.nodes.replicas.keys()) {
      const state = this.monitor.state(name);
      views.push({
        name,
        healthy: state?.status === 'up',
        replayLsn: state?.replayLsn,
        lagMs: state?.lagMs,
        freshAt: state?.freshAt,
        sampledAt: state?.sampledAt,
        advancedAt: state?.advancedAt,
      });
    }
    this.#viewsCache = { version, views };
    return views;
  }
}

/**
 * Whether a read must not leave the node of the session's uncovered reads without covering them:
 * at monotonic levels always; at any level when they stand for a write whose position could not
 * be read (`'primary'`, see `Session#positionUnknown`), which read-your-writes needs covered too.
 */
function covers(level: Consistency, session: Session): boolean {
  return isMonotonic(level) || session.uncovered === 'primary';
}
