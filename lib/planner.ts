import { isMonotonic, type Consistency } from './consistency.js';
import type { Counters } from './counters.js';
import type { Lsn } from './lsn.js';
import type { MonitorView } from './monitor-view.js';
import type { NodePool, NodePools } from './nodes.js';
import type { Route, RoutedStatement } from './route.js';
import { checkLive } from './live-checks.js';
import { decide, type Decision, type ReplicaView } from './routing-policy.js';

type CheckDecision = Extract<Decision, { target: 'check' }>;
import type { Scope } from './scopes.js';
import type { PositionSample, Session } from './session.js';
import type { SessionStore } from './session-store.js';

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
   * `flies`: the statement can carry a live read of a replica's position (lib/position-flight.ts):
   * when none is known ready and no wait is allowed, the most advanced candidate is checked in the
   * read's own flight, not by a round trip first. `checked`: replicas just read behind the floor.
   */
  planSync(
    statement: RoutedStatement,
    scope: Scope,
    preferred?: string,
    exclude?: ReadonlySet<string>,
    flies = false,
    checked?: ReadonlySet<string>,
  ): Route | undefined {
    const level = this.levelOf(scope);
    const session = scope.session;
    const needsFloor = this.#needsFloor(statement, level, scope);
    if (needsFloor) {
      if (session.key !== undefined && !this.sessions.loadNow(session)) return undefined;
      if ((session.key === undefined && session.writePending) || session.resync || session.positioning) return undefined;
    }
    const monotonic = needsFloor && covers(level, session);
    const decision = this.#decide(statement, level, scope, preferred ?? (monotonic ? this.#sticky(session) : undefined), checked, exclude);
    if (decision.target === 'check') return this.#flight(decision, session, monotonic, flies, checked);
    if (monotonic && this.#moves(session, decision)) return undefined;
    return this.#toRoute(decision, session.floor, 0);
  }

  /** Plans a statement, doing whatever I/O the decision needs (see the class). */
  async plan(statement: RoutedStatement, scope: Scope, preferred?: string, exclude?: ReadonlySet<string>, flies = false): Promise<Route> {
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
        const flight = this.#flight(decision, session, monotonic, flies, checked);
        if (flight) return flight;
        waitedMs += await checkLive(this.monitor, decision.nodes, session.floor, this.options.maxWaitMs);
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

  /**
   * A 'check' as a read that carries its own live check (lib/position-flight.ts): on the node of the
   * session's uncovered reads if it is a candidate (staying needs no cover), else the most advanced
   * one. Undefined when the read cannot fly, may wait (the live checks wait), would move away from
   * the node of those reads (they are covered first), or would queue for a connection: reads that
   * queue share one round of live checks, which costs less than a check in each.
   */
  #flight(decision: CheckDecision, session: Session, monotonic: boolean, flies: boolean, checked?: ReadonlySet<string>): Route | undefined {
    if (!flies || checked || this.options.maxWaitMs > 0) return undefined;
    const sticky = monotonic ? this.#sticky(session) : undefined;
    const name = sticky !== undefined && decision.nodes.includes(sticky) ? sticky : this.#mostAdvanced(decision.nodes);
    const node = this.nodes.replicas.get(name);
    // Reads queueing for the replica's connections share one live check instead (a burst).
    if (!node || node.pool.waitingCount > 0 || (monotonic && session.movesTo(name))) return undefined;
    return {
      node,
      decision: { target: 'replica', node: name, reason: 'checked-in-flight' },
      floor: session.floor,
      waitedMs: 0,
      flight: 'replay-before',
    };
  }

  /**
   * The candidate the cache has furthest (`nodes` are sorted so), or one at random among several as
   * far: reads that fly spread over equal replicas, as the reads after a round of live checks do.
   */
  #mostAdvanced(nodes: readonly string[]): string {
    const top = this.monitor.state(nodes[0]!)?.replayLsn;
    let tied = 1;
    while (tied < nodes.length && this.monitor.state(nodes[tied]!)?.replayLsn === top) tied++;
    return nodes[Math.floor(Math.random() * tied)]!;
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
    checked: ReadonlySet<string> | undefined,
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
