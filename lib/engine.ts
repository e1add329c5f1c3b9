import pg from 'pg';
import { Classifier, type Classification } from './classifier.js';
import type { Consistency } from './consistency.js';
import { scopes, Session, type Scope } from './context.js';
import { parseLsn, type Lsn } from './lsn.js';
import { Monitor } from './monitor.js';
import type { ResolvedRouterOptions } from './options.js';
import { encodePosition, unionNode, type StoredPosition } from './position.js';
import { decide, type Decision, type ReplicaView } from './routing-policy.js';
import { decodeToken, encodeToken, type TokenRejection } from './token.js';
import { rateLimited } from './log.js';
import { GuardedStore } from './stores/guard.js';
import { Telemetry } from './telemetry.js';

const NO_TEXT: Classification = Object.freeze({ kind: 'write', detail: 'no-text' });

/** One server and the application's pool to it. */
export interface NodePool {
  readonly name: string;
  readonly role: 'primary' | 'replica';
  readonly pool: pg.Pool;
  /** Statements this router sent to the node (routing decisions, not monitor polls). */
  served: number;
}

/** Where a statement goes, and why. */
export interface Route {
  readonly node: NodePool;
  readonly decision: Exclude<Decision, { target: 'check' }>;
  readonly floor: Lsn;
  readonly waitedMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Levels whose reads keep monotonic reads (and so record where they read). */
function monotonic(level: Consistency): boolean {
  return level === 'session' || typeof level === 'object';
}

/**
 * The routing engine shared by the pool and its clients: nodes, monitor, classifier, store,
 * sessions and tokens. Everything per statement goes through {@link routeSync} / {@link route}.
 */
export class Engine {
  readonly primary: NodePool;
  readonly replicas: ReadonlyMap<string, NodePool>;
  readonly monitor: Monitor;
  readonly classifier: Classifier;
  /** Outside any scope the process is one session, kept in memory. */
  readonly processSession = new Session(undefined);
  /** The user's store behind timeouts and a circuit breaker. */
  readonly store: GuardedStore;
  readonly #warn: ReturnType<typeof rateLimited>;
  /** Floors loaded from the store are raised to this: the primary's position after positions may have been lost. */
  #recoveryFloor: Lsn = 0n;
  /** `performance.now()` of the last failed store write (positions may be missing since). */
  #lostAt = -Infinity;
  /** When the current recovery floor was sampled (request sent). */
  #recoverySampledAt = -Infinity;
  #recovering: { promise: Promise<void>; sentAt: number } | undefined;
  readonly counters = {
    positionReads: 0,
    liveChecks: 0,
    storeReads: 0,
    storeWrites: 0,
    storeErrors: 0,
    positionErrors: 0,
    corruptPositions: 0,
    foreignPositions: 0,
    tokensAccepted: 0,
    tokensRejected: { malformed: 0, oversized: 0, forged: 0, version: 0, foreign: 0 } as Record<TokenRejection, number>,
  };
  #started: Promise<void> | undefined;
  /** True once the parser is loaded and every node was polled once. */
  isStarted = false;

  constructor(readonly options: ResolvedRouterOptions) {
    this.primary = { name: 'primary', role: 'primary', pool: new pg.Pool(options.primary), served: 0 };
    this.replicas = new Map(
      options.replicas.map(({ name, config }) => [name, { name, role: 'replica' as const, pool: new pg.Pool(config), served: 0 }]),
    );
    this.monitor = new Monitor(
      [{ name: 'primary', role: 'primary', config: options.primary }, ...options.replicas.map((r) => ({ name: r.name, role: 'replica' as const, config: r.config }))],
      options.monitor,
    );
    this.classifier = new Classifier({ writeFunctions: options.writeFunctions, cacheSize: options.classifierCacheSize });
    this.#warn = rateLimited(options.logger);
    this.store = new GuardedStore(options.store, options.storeGuard, {
      onOpen: (err) => this.#warn('store-open', 'position store unreachable; reads that need a session floor go to the primary', { error: String(err) }),
      onRecover: () => this.#warn('store-recovered', 'position store reachable again; stored floors are raised to the primary position observed now'),
      onError: (reason) => this.telemetry.storeError(reason),
    });
    this.telemetry = new Telemetry(
      options.telemetry,
      [{ name: 'primary', role: 'primary', config: options.primary }, ...options.replicas.map((r) => ({ name: r.name, role: 'replica' as const, config: r.config }))],
      this.monitor,
      this.store,
    );
  }

  /** Spans and metrics (no-ops without OpenTelemetry). */
  readonly telemetry: Telemetry;

  /** An idle pooled connection of `node` failed and nobody listens for pool errors: log it (rate-limited). */
  idleConnectionError(node: string, err: unknown): void {
    this.#warn(`idle-error-${node}`, `an idle connection to ${node} failed; it was dropped`, { error: String(err) });
  }

  /** Opens the span for a decision (undefined when nothing records spans). */
  traceRoute(route: Route, statement: string, scope: Scope, retry = false): ReturnType<Telemetry['route']> {
    const level = scope.consistency ?? this.options.consistency;
    return this.telemetry.route(route, statement, level, () => this.monitor.state(route.node.name)?.replayLsn, retry);
  }

  scope(): Scope {
    return scopes.getStore() ?? { session: this.processSession, consistency: undefined, forcePrimary: false };
  }

  /** Resolves once the parser is loaded and every node was polled once (awaited by the first statements only). */
  started(): Promise<void> {
    this.#started ??= Promise.all([this.classifier.ready, this.monitor.ready]).then(() => {
      this.isStarted = true;
    });
    return this.#started;
  }

  /** Classifies a statement; call after {@link started}. */
  classify(text: string | undefined): Classification {
    if (text === undefined) return NO_TEXT;
    return this.classifier.classifySync(text);
  }

  #needsFloor(statement: 'read' | 'other', level: Consistency, scope: Scope): boolean {
    return statement === 'read' && !scope.forcePrimary && level !== 'primary' && level !== 'eventual' && this.replicas.size > 0;
  }

  /**
   * The hot path: decides without any I/O when it can (floor known, a replica known ready and no
   * move away from the session's node). Undefined when {@link route} must do I/O first.
   */
  routeSync(statement: 'read' | 'other', scope: Scope, preferred?: string, exclude?: ReadonlySet<string>): Route | undefined {
    const level = scope.consistency ?? this.options.consistency;
    const session = scope.session;
    const needsFloor = this.#needsFloor(statement, level, scope);
    if (needsFloor) {
      if (session.key !== undefined && !session.loadDone) return undefined;
      if ((session.key === undefined && session.dirty) || session.resync || session.fetching) return undefined;
    }
    const mr = needsFloor && monotonic(level);
    const decision = this.#decide(statement, level, scope, preferred ?? (mr ? this.#sticky(session) : undefined), undefined, exclude);
    if (decision.target === 'check' || (mr && this.#moves(session, decision))) return undefined;
    return this.#toRoute(decision, session.floor, 0);
  }

  /**
   * Decides where a statement runs. Reads load the session floor lazily (one store read per
   * scope), use the monitor's cache, check the most advanced replica live only when none is known
   * to be ready (waiting up to `maxWaitMs`), and before leaving the node the session last read
   * from, raise the floor to that node's position sampled after those reads (monotonic reads).
   */
  async route(statement: 'read' | 'other', scope: Scope, preferred?: string, exclude?: ReadonlySet<string>): Promise<Route> {
    const level = scope.consistency ?? this.options.consistency;
    const session = scope.session;
    const needsFloor = this.#needsFloor(statement, level, scope);
    if (needsFloor) await this.#resolveFloor(session);
    const mr = needsFloor && monotonic(level);

    let checked: Set<string> | undefined;
    let waitedMs = 0;
    for (let covers = 0; ; ) {
      const decision = this.#decide(statement, level, scope, preferred ?? (mr ? this.#sticky(session) : undefined), checked, exclude);
      if (decision.target === 'check') {
        waitedMs += await this.#checkLive(decision.node, session.floor);
        checked = new Set([decision.node]);
        continue;
      }
      if (mr && this.#moves(session, decision)) {
        if (covers++ < 2 && (await this.#cover(session))) {
          checked = undefined;
          continue;
        }
        // Could not sample the old node or the primary: the primary itself is always monotonic.
        return { node: this.primary, decision: { target: 'primary', reason: 'replica-behind' }, floor: session.floor, waitedMs };
      }
      return this.#toRoute(decision, session.floor, waitedMs)!;
    }
  }

  /** The replica the session's uncovered reads were on, to stay there. */
  #sticky(session: Session): string | undefined {
    return session.node !== undefined && this.replicas.has(session.node) ? session.node : undefined;
  }

  /** Would this decision read a replica other than the node of the session's uncovered reads? */
  #moves(session: Session, decision: Decision): boolean {
    return decision.target === 'replica' && session.node !== undefined && session.node !== decision.node;
  }

  async #checkLive(node: string, floor: Lsn): Promise<number> {
    const started = performance.now();
    this.counters.liveChecks++;
    let { lsn } = await this.monitor.sample(node, started);
    const deadline = started + this.options.maxWaitMs;
    while ((lsn === undefined || lsn < floor) && performance.now() < deadline) {
      await sleep(Math.min(10, Math.max(1, deadline - performance.now())));
      this.counters.liveChecks++;
      ({ lsn } = await this.monitor.sample(node, performance.now()));
    }
    return this.options.maxWaitMs > 0 ? Math.round(performance.now() - started) : 0;
  }

  /**
   * Covers the session's uncovered reads: raises the floor to a position of their node (or of the
   * primary, which is ahead of every replica of its history) sampled after they ended. Free when
   * the monitor's cache holds such a sample. False when no sample could be had.
   */
  async #cover(session: Session): Promise<boolean> {
    const since = session.nodeReadEndedAt;
    let sample: { lsn: Lsn; sentAt: number } | undefined;
    const nodes = session.node?.split(',') ?? [];
    // Only replicas up and not reset since those reads (a restarted replica may replay from
    // behind what they saw); otherwise the primary, which is ahead of them all.
    const usable = (n: string) => {
      const state = this.monitor.state(n);
      return this.replicas.has(n) && state?.status === 'up' && state.resetAt < since;
    };
    if (nodes.length > 0 && nodes.every(usable)) {
      // Each replica the uncovered reads ran on, sampled after they ended: the highest covers them all.
      const samples = await Promise.all(
        nodes.map(async (node) => {
          const cached = this.monitor.state(node);
          if (cached?.replayLsn !== undefined && cached.sampledAt >= since) return { lsn: cached.replayLsn, sentAt: cached.sampledAt };
          this.counters.liveChecks++;
          const live = await this.monitor.sample(node, since);
          return live.lsn === undefined ? undefined : { lsn: live.lsn, sentAt: live.sentAt };
        }),
      );
      if (samples.every((x) => x !== undefined) && nodes.every(usable)) {
        sample = samples.reduce((a, b) => ({ lsn: b.lsn > a.lsn ? b.lsn : a.lsn, sentAt: Math.min(a.sentAt, b.sentAt) }));
      }
    }
    if (!sample) {
      // The earliest primary position known to be taken after those reads: the lowest floor
      // that covers them (a later, higher one would make replicas catch up for nothing).
      const known = this.monitor.primarySampleSince(since);
      if (known) sample = known;
      else {
        this.counters.positionReads++;
        const live = await this.monitor.sample('primary', since);
        if (live.lsn !== undefined) sample = { lsn: live.lsn, sentAt: live.sentAt };
      }
    }
    if (!sample) return false;
    this.#applyCover(session, sample);
    return true;
  }

  /** Raises the floor to a position sampled after the session's uncovered reads, which it covers. */
  #applyCover(session: Session, sample: { lsn: Lsn; sentAt: number }): void {
    session.raise(sample.lsn);
    this.#stamp(session);
    if (session.nodeReadEndedAt <= sample.sentAt) session.node = undefined;
  }

  #decide(
    statement: 'read' | 'other',
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
      wroteInScope: session.key !== undefined && session.dirty,
      replicas: this.#views(),
      preferred,
      checked,
      exclude,
      floorAgeMs: this.#floorAge,
      maxWaitMs: this.options.maxWaitMs,
    });
  }

  /** How long ago, at most, `floor` was written (from the primary positions seen recently). */
  readonly #floorAge = (floor: Lsn): number | undefined => {
    const after = this.monitor.writtenAfter(floor);
    return after === undefined ? undefined : performance.now() - after;
  };

  #toRoute(decision: Decision, floor: Lsn, waitedMs: number): Route | undefined {
    if (decision.target === 'primary') return { node: this.primary, decision, floor, waitedMs };
    if (decision.target === 'replica') return { node: this.replicas.get(decision.node)!, decision, floor, waitedMs };
    return undefined;
  }

  #viewsCache: { version: number; views: ReplicaView[] } | undefined;

  /** The policy's view of the replicas, rebuilt only when the monitor's state changed. */
  #views(): ReplicaView[] {
    const version = this.monitor.version;
    if (this.#viewsCache?.version === version) return this.#viewsCache.views;
    const views: ReplicaView[] = [];
    for (const name of this.replicas.keys()) {
      const state = this.monitor.state(name);
      views.push({ name, healthy: state?.status === 'up', replayLsn: state?.replayLsn, lagMs: state?.lagMs });
    }
    this.#viewsCache = { version, views };
    return views;
  }

  /** Loads the stored position (once per session) and turns pending writes into a position. */
  async #resolveFloor(session: Session): Promise<void> {
    if (session.key !== undefined) {
      session.loaded ??= this.#load(session);
      await session.loaded;
    }
    const ours = this.monitor.primaryIdentity();
    if (session.timeline !== undefined && ours.timeline !== undefined && session.timeline !== ours.timeline) {
      session.resync = true; // a failover since the floor was taken: LSNs of the old history do not compare
    }
    // A scope's own writes send its reads to the primary until it ends; elsewhere they are
    // turned into a floor now, shared by concurrent reads.
    while ((session.key === undefined && session.dirty) || session.resync || session.fetching) {
      if (session.fetching) {
        await session.fetching;
        continue;
      }
      session.fetching = this.#fetchPrimaryPosition(session).finally(() => {
        session.fetching = undefined;
      });
    }
  }

  async #load(session: Session): Promise<void> {
    try {
      this.counters.storeReads++;
      const stored = await this.store.get(session.key!);
      session.storeOutcome = stored === null ? 'corrupt' : stored === undefined ? 'miss' : 'hit';
      // Positions may have been lost while the store was failing: not below the primary's
      // position observed after the last failure.
      if (this.#lostAt > this.#recoverySampledAt) await this.#sampleRecoveryFloor();
      session.raise(this.#recoveryFloor);
      if (stored === null) {
        this.counters.corruptPositions++;
        this.#warn('corrupt-position', 'undecodable value in the position store; treated as the current primary position');
        session.resync = true; // never "no floor": the current primary position
      } else if (stored !== undefined) {
        session.loadedValue = stored;
        if (!this.#merge(session, stored)) {
          this.counters.foreignPositions++;
          this.#warn('foreign-position', 'position of another PostgreSQL system in the store; treated as the current primary position', {
            systemId: stored.systemId,
          });
          session.resync = true;
        }
      }
    } catch {
      this.counters.storeErrors++;
      session.storeOutcome = 'unavailable';
      session.floorUnknown = true; // fail safe: reads that need a floor go to the primary
    }
    session.loadDone = true;
  }

  /** Samples the primary's insert LSN after the last lost store write (shared by concurrent loads). */
  async #sampleRecoveryFloor(): Promise<void> {
    const lostAt = this.#lostAt;
    if (!this.#recovering || this.#recovering.sentAt < lostAt) {
      const sentAt = performance.now();
      const promise = (async () => {
        this.counters.positionReads++;
        const { rows } = await this.primary.pool.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
        const lsn = parseLsn(rows[0]!.lsn);
        this.monitor.notePrimaryPosition(lsn, sentAt);
        if (lsn > this.#recoveryFloor) this.#recoveryFloor = lsn;
        if (sentAt > this.#recoverySampledAt) this.#recoverySampledAt = sentAt;
      })().finally(() => {
        if (this.#recovering?.promise === promise) this.#recovering = undefined;
      });
      this.#recovering = { promise, sentAt };
    }
    await this.#recovering.promise;
  }

  /**
   * Merges a position from the store or a token into a session. From another WAL history (or
   * without one when ours is known) it means "the current primary position". Returns false for a
   * position of another system altogether.
   */
  #merge(session: Session, position: StoredPosition): boolean {
    const ours = this.monitor.primaryIdentity();
    if (ours.systemId !== undefined && position.systemId !== undefined && position.systemId !== ours.systemId) return false;
    const comparable =
      ours.systemId === undefined || ours.timeline === undefined || (position.systemId === ours.systemId && position.timeline === ours.timeline);
    if (comparable) session.absorb(position, performance.now());
    else session.resync = true;
    return true;
  }

  /**
   * Reads the primary's insert LSN *after* the session's writes were acknowledged (and after its
   * earlier reads ended): at least every commit record they made (unlike the flush LSN under
   * synchronous_commit = off), and ahead of whatever those reads observed.
   */
  async #fetchPrimaryPosition(session: Session): Promise<void> {
    const wasDirty = session.dirty;
    const wasResync = session.resync;
    session.dirty = false;
    session.resync = false;
    const sentAt = performance.now();
    try {
      this.counters.positionReads++;
      const { rows } = await this.primary.pool.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
      const lsn = parseLsn(rows[0]!.lsn);
      this.monitor.notePrimaryPosition(lsn, sentAt);
      if (wasResync) session.floor = 0n; // the old history's LSN is not comparable
      session.raise(lsn);
      this.#stamp(session);
      if (session.nodeReadEndedAt <= sentAt) session.node = undefined;
    } catch (err) {
      session.dirty ||= wasDirty;
      session.resync ||= wasResync;
      throw err;
    }
  }

  /** Marks the session's floor as belonging to the primary's current history. */
  #stamp(session: Session): void {
    const ours = this.monitor.primaryIdentity();
    session.systemId = ours.systemId;
    session.timeline = ours.timeline;
  }

  /** A statement that may have written ran on the primary for this scope. */
  noteWrite(scope: Scope): void {
    scope.session.dirty = true;
    scope.session.wrote = true;
  }

  /** A read ran on `node`: remember it, so later reads of the session never go back in time. */
  noteRead(scope: Scope, node: NodePool): void {
    const level = scope.consistency ?? this.options.consistency;
    if (!(monotonic(level) || level === 'primary' || scope.forcePrimary)) return;
    const session = scope.session;
    session.node = unionNode(session.node, node.name);
    session.nodeReadEndedAt = performance.now();
  }

  /** Runs `fn` as session `key`: loads its position lazily, stores the new one at the end. */
  async withSession<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const outer = this.scope();
    const session = new Session(key);
    try {
      return await scopes.run({ session, consistency: outer.consistency, forcePrimary: outer.forcePrimary }, fn);
    } finally {
      // Storing the position must not turn a request that succeeded into a failure.
      await this.#persist(session).catch(() => {});
      this.#fold(outer.session, session);
    }
  }

  /** Hands what an inner scope wrote and read to the scope around it (which goes on after it). */
  #fold(parent: Session, child: Session): void {
    if (parent === child) return;
    if (child.dirty) parent.dirty = true;
    if (child.resync) parent.resync = true;
    if (child.floor > 0n) {
      const comparable = parent.timeline === undefined || child.timeline === undefined || (parent.systemId === child.systemId && parent.timeline === child.timeline);
      if (comparable) parent.absorb(child.position(), child.nodeReadEndedAt);
      else parent.resync = true;
    } else if (child.node !== undefined) {
      parent.absorb({ lsn: 0n, node: child.node }, child.nodeReadEndedAt);
    }
  }

  async #persist(session: Session, key = session.key): Promise<void> {
    if (key === undefined) return;
    if (session.dirty || (session.resync && session.wrote)) {
      try {
        await this.#fetchPrimaryPosition(session);
      } catch {
        // The write committed but its position is unknown: whatever reads next must first
        // sample the primary (which is past it) before using any replica.
        this.counters.positionErrors++;
        session.dirty = false;
        session.node = 'primary';
        session.nodeReadEndedAt = performance.now();
      }
    }
    // Reads on the primary, not yet covered. Stored as "primary", the next request could only
    // cover them with a position taken after it loads them: one no lagging replica has reached,
    // so a busy session would never get back to the replicas. So they are covered with a primary
    // position taken after them: now, if one is already known (free); otherwise the position is
    // stored as is (safe) and covered once a sample arrives, off the request's path.
    let coverLater = false;
    if (session.node === 'primary' && !session.floorUnknown && this.monitor.state('primary')?.status !== 'down') {
      const known = this.monitor.primarySampleSince(session.nodeReadEndedAt);
      if (known) this.#applyCover(session, known);
      else coverLater = key === session.key;
    }
    if (session.systemId === undefined && session.timeline === undefined) this.#stamp(session); // its reads ran in today's history
    const loaded = key === session.key ? session.loadedValue : undefined;
    let next = session.position();
    // Another request of this session may have read on the replica we loaded (staying there is
    // free, so it stores nothing), after any sample we took: keep that replica among the uncovered
    // ones. A loaded list or "primary" needs no such care: a request that loaded it covers it
    // before reading a replica, and so stores what it did itself.
    if (loaded?.node !== undefined && next.node !== loaded.node && this.replicas.has(loaded.node)) {
      next = { ...next, node: unionNode(next.node, loaded.node) };
    }
    // Reads on the primary that could not be covered are always stored (merged with whatever a
    // concurrent request of the session stored), even if the value looks unchanged.
    const unchanged = loaded !== undefined ? encodePosition(next) === encodePosition(loaded) : next.lsn === 0n && next.node === undefined;
    if (unchanged && next.node !== 'primary') return;
    this.counters.storeWrites++;
    try {
      await this.store.raise(key, next, loaded);
      if (key === session.key) session.loadedValue = next; // what a second raise compares against
      if (coverLater) this.#track(this.#coverStored(session, key, next));
    } catch (err) {
      this.counters.storeErrors++;
      this.#lostAt = performance.now(); // loads must not trust stored floors below the primary from now on
      throw err;
    }
  }

  readonly #background = new Set<Promise<void>>();

  #track(work: Promise<void>): void {
    this.#background.add(work);
    void work.finally(() => this.#background.delete(work));
  }

  /**
   * Replaces a stored position whose reads on the primary were not covered (`stored`) by one
   * covered by a primary sample taken after them. If the session stored something else meanwhile,
   * the store's merge keeps whatever that request still needs covered.
   */
  async #coverStored(session: Session, key: string, stored: StoredPosition): Promise<void> {
    try {
      const since = session.nodeReadEndedAt;
      const sample = await this.monitor.sample('primary', since);
      if (sample.lsn === undefined) return;
      this.counters.positionReads++;
      const ours = this.monitor.primaryIdentity();
      const covered: StoredPosition = { lsn: sample.lsn > stored.lsn ? sample.lsn : stored.lsn, node: undefined, systemId: ours.systemId ?? stored.systemId, timeline: ours.timeline ?? stored.timeline };
      if (covered.systemId !== stored.systemId || covered.timeline !== stored.timeline) return; // a failover meanwhile: leave it to the next load
      this.counters.storeWrites++;
      await this.store.raise(key, covered, stored);
    } catch {
      this.counters.storeErrors++; // "primary" stays stored: safe
    }
  }

  /** A token for the current session: everything it wrote or observed so far. */
  currentToken(secret: Buffer): Promise<string> {
    return this.#tokenFor(this.scope().session, secret, true);
  }

  /** `load`: include the stored position even if nothing loaded it yet (one store read). */
  async #tokenFor(session: Session, secret: Buffer, load: boolean): Promise<string> {
    if (load && session.key !== undefined && !session.loadDone) {
      session.loaded ??= this.#load(session);
      await session.loaded;
    }
    try {
      while (session.dirty || session.resync || session.fetching) {
        if (session.fetching) await session.fetching;
        else {
          session.fetching = this.#fetchPrimaryPosition(session).finally(() => {
            session.fetching = undefined;
          });
        }
      }
    } catch {
      // Position unknown: the token makes its receiver sample the primary first.
      session.dirty = false;
      session.node = 'primary';
      session.nodeReadEndedAt = performance.now();
    }
    if (session.systemId === undefined && session.timeline === undefined) this.#stamp(session);
    return encodeToken(session.position(), secret);
  }

  /**
   * Runs `fn` so that its reads observe at least the token's position: merged into the current
   * session scope, or into a fresh in-memory session outside one. A bad token is ignored
   * (counted), never thrown.
   */
  withToken<T>(token: unknown, secrets: readonly Buffer[], fn: () => Promise<T> | T): Promise<T> {
    const outer = this.scope();
    let session = outer.session;
    if (session.key === undefined) {
      // A continuation of the current (in-memory) session, plus the token.
      session = new Session(undefined);
      this.#fold(session, outer.session);
    }
    this.#absorbToken(session, token, secrets);
    const run = async () => {
      try {
        return await scopes.run({ session, consistency: outer.consistency, forcePrimary: outer.forcePrimary }, fn);
      } finally {
        this.#fold(outer.session, session);
      }
    };
    return run();
  }

  /** Merges a token into a session; a bad one is counted (and logged), never thrown. */
  #absorbToken(session: Session, token: unknown, secrets: readonly Buffer[]): void {
    const decoded = decodeToken(token, secrets);
    let rejected: TokenRejection | undefined;
    if ('rejected' in decoded) rejected = decoded.rejected;
    else if (this.#merge(session, decoded.position)) this.counters.tokensAccepted++;
    else rejected = 'foreign';
    if (rejected) {
      this.counters.tokensRejected[rejected]++;
      this.telemetry.tokenRejected(rejected);
      this.#warn(`token-${rejected}`, `ignored a ${rejected} consistency token`);
    }
  }

  /** The token is genuine (signed with one of our secrets, well formed). */
  verifies(token: unknown): boolean {
    return this.options.tokenSecrets.length > 0 && 'position' in decodeToken(token, this.options.tokenSecrets);
  }

  /**
   * Opens a request scope (the Express middleware): a session (keyed, or in memory for
   * token-only clients) with an incoming token merged in. `finish()` stores the position and
   * returns the token for the response; it never rejects, and runs once.
   */
  openRequest(request: { key: string | undefined; token: unknown; consistency: Consistency | undefined }): {
    scope: Scope;
    finish(currentKey?: string): Promise<string | undefined>;
  } {
    const session = new Session(request.key);
    const secrets = this.options.tokenSecrets;
    if (request.token !== undefined && secrets.length > 0) this.#absorbToken(session, request.token, secrets);
    const scope: Scope = { session, consistency: request.consistency, forcePrimary: request.consistency === 'primary' };
    let chain: Promise<unknown> = Promise.resolve();
    let first = true;
    return {
      scope,
      // Runs after the handler's first byte, and again before its last: each time it stores what
      // changed (nothing, usually, the second time). The first time it also makes the token.
      finish: (currentKey) => {
        const wantToken = first;
        first = false;
        const run = chain.then(async () => {
          await this.#persist(session).catch(() => {});
          // The session's key changed during the request (login, session regeneration): the new
          // key must carry what this request wrote too.
          if (currentKey !== undefined && currentKey !== session.key) await this.#persist(session, currentKey).catch(() => {});
          if (!wantToken || secrets.length === 0) return undefined;
          // Only what this request knows (no store read just for the header: the budget).
          if (session.floor === 0n && session.node === undefined && !session.dirty && !session.resync) return undefined;
          return this.#tokenFor(session, secrets[0]!, false).catch(() => undefined);
        });
        chain = run;
        return run;
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.#background);
    await this.monitor.close();
    await Promise.all([this.primary, ...this.replicas.values()].map((n) => n.pool.end().catch(() => {})));
    await this.store.close();
  }
}
