import pg from 'pg';
import { Classifier, type Classification } from './classifier.js';
import { scopes, Session, type Scope } from './context.js';
import { parseLsn, type Lsn } from './lsn.js';
import { Monitor } from './monitor.js';
import type { ResolvedRouterOptions } from './options.js';
import { decide, type Decision, type ReplicaView } from './routing-policy.js';
import type { Consistency } from './consistency.js';

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

/**
 * The routing engine shared by the pool and its clients: nodes, monitor, classifier, store and
 * sessions. Everything per statement goes through {@link route}.
 */
export class Engine {
  readonly primary: NodePool;
  readonly replicas: ReadonlyMap<string, NodePool>;
  readonly monitor: Monitor;
  readonly classifier: Classifier;
  /** Outside any scope the process is one session, kept in memory. */
  readonly processSession = new Session(undefined);
  readonly counters = { positionReads: 0, liveChecks: 0, storeReads: 0, storeWrites: 0 };

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
  }

  scope(): Scope {
    return scopes.getStore() ?? { session: this.processSession, consistency: undefined, forcePrimary: false };
  }

  #started: Promise<void> | undefined;
  /** True once the parser is loaded and every node was polled once. */
  isStarted = false;
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

  /**
   * The hot path: decides without any I/O when it can (floor known, a replica known ready, or no
   * replica needed). Undefined when {@link route} must do I/O first.
   */
  routeSync(statement: 'read' | 'other', scope: Scope, preferred?: string, exclude?: ReadonlySet<string>): Route | undefined {
    const level = scope.consistency ?? this.options.consistency;
    const session = scope.session;
    if (statement === 'read' && !scope.forcePrimary && level !== 'primary' && level !== 'eventual' && this.replicas.size > 0) {
      if (session.key !== undefined ? session.loaded === undefined || !session.loadDone : session.dirty || session.fetching) return undefined;
    }
    const decision = this.#decide(statement, level, scope, preferred, undefined, exclude);
    return this.#toRoute(decision, session.floor, 0);
  }

  #decide(statement: 'read' | 'other', level: Consistency, scope: Scope, preferred: string | undefined, checked: Set<string> | undefined, exclude: ReadonlySet<string> | undefined): Decision {
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
    });
  }

  #toRoute(decision: Decision, floor: Lsn, waitedMs: number): Route | undefined {
    if (decision.target === 'primary') return { node: this.primary, decision, floor, waitedMs };
    if (decision.target === 'replica') return { node: this.replicas.get(decision.node)!, decision, floor, waitedMs };
    return undefined;
  }

  /**
   * Decides where a statement runs. Reads load the session floor lazily (one store read per
   * scope), use the monitor's cache, and only when no replica is known to be ready check the most
   * advanced one live (one round trip), optionally waiting up to `maxWaitMs`.
   */
  async route(statement: 'read' | 'other', scope: Scope, preferred?: string, exclude?: ReadonlySet<string>): Promise<Route> {
    const level = scope.consistency ?? this.options.consistency;
    const session = scope.session;
    const needsFloor = statement === 'read' && !scope.forcePrimary && level !== 'primary' && level !== 'eventual' && this.replicas.size > 0;
    if (needsFloor) await this.#resolveFloor(session);

    let checked: Set<string> | undefined;
    let waitedMs = 0;
    for (;;) {
      const decision = this.#decide(statement, level, scope, preferred, checked, exclude);
      if (decision.target !== 'check') return this.#toRoute(decision, session.floor, waitedMs)!;
      // Check the most advanced replica live; wait for it if allowed.
      const started = performance.now();
      this.counters.liveChecks++;
      let lsn = await this.monitor.replayLsnNow(decision.node);
      const deadline = started + this.options.maxWaitMs;
      while ((lsn === undefined || lsn < session.floor) && performance.now() < deadline) {
        await sleep(Math.min(10, Math.max(1, deadline - performance.now())));
        this.counters.liveChecks++;
        lsn = await this.monitor.replayLsnNow(decision.node);
      }
      waitedMs = this.options.maxWaitMs > 0 ? Math.round(performance.now() - started) : 0;
      checked = new Set([decision.node]);
    }
  }

  #views(): ReplicaView[] {
    const views: ReplicaView[] = [];
    for (const name of this.replicas.keys()) {
      const state = this.monitor.state(name);
      views.push({ name, healthy: state?.status === 'up', replayLsn: state?.replayLsn, lagMs: state?.lagMs });
    }
    return views;
  }

  /** Loads the stored floor (once per session) and turns pending writes into a position. */
  async #resolveFloor(session: Session): Promise<void> {
    if (session.key !== undefined) {
      session.loaded ??= this.#load(session);
      await session.loaded;
      return; // a scope's own writes send its reads to the primary until the scope ends
    }
    while (session.dirty || session.fetching) {
      if (session.fetching) {
        await session.fetching;
        continue;
      }
      session.fetching = this.#fetchWritePosition(session).finally(() => {
        session.fetching = undefined;
      });
    }
  }

  async #load(session: Session): Promise<void> {
    try {
      this.counters.storeReads++;
      const stored = await this.options.store.get(session.key!);
      if (stored) session.raise(stored.lsn);
    } catch {
      session.floorUnknown = true; // fail safe: reads that need a floor go to the primary
    }
    session.loadDone = true;
  }

  /**
   * Reads the primary's insert LSN *after* the session's writes were acknowledged: at least
   * every commit record they made (unlike the flush LSN under synchronous_commit = off).
   */
  async #fetchWritePosition(session: Session): Promise<void> {
    session.dirty = false;
    try {
      this.counters.positionReads++;
      const { rows } = await this.primary.pool.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
      session.raise(parseLsn(rows[0]!.lsn));
    } catch (err) {
      session.dirty = true;
      throw err;
    }
  }

  /** A statement that may have written ran on the primary for this scope. */
  noteWrite(scope: Scope): void {
    scope.session.dirty = true;
    scope.session.wrote = true;
  }

  /** Runs `fn` as session `key`: loads its position lazily, stores the new one at the end. */
  async withSession<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const outer = this.scope();
    const session = new Session(key);
    try {
      return await scopes.run({ session, consistency: outer.consistency, forcePrimary: outer.forcePrimary }, fn);
    } finally {
      await this.#persist(session);
    }
  }

  async #persist(session: Session): Promise<void> {
    if (!session.wrote || session.key === undefined) return;
    if (session.dirty) await this.#fetchWritePosition(session);
    this.counters.storeWrites++;
    await this.options.store.raise(session.key, { lsn: session.floor });
  }

  async close(): Promise<void> {
    await this.monitor.close();
    await Promise.all([this.primary, ...this.replicas.values()].map((n) => n.pool.end().catch(() => {})));
    await this.options.store.close?.();
  }
}
