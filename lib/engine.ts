import { isDeepStrictEqual } from 'node:util';
import { Classifier } from './classifier.js';
import { ClientRegistry } from './client-registry.js';
import { RoutedClient } from './client.js';
import { withRoutedHooks } from './hooks.js';
import { newCounters, type Counters } from './counters.js';
import { Dispatch } from './dispatch.js';
import { rateLimited } from './log.js';
import { Monitor } from './monitor.js';
import type { MonitorFactory, MonitorView } from './monitor-view.js';
import { NodePools, replicaBounds, type NodeConfig, type NodePool, type PoolFactory } from './nodes.js';
import { nodeVerdict } from './node-verdict.js';
import { configWarn, resolveReplicas, type ResolvedRouterOptions } from './options.js';
import { isConnectionError } from './pg-args.js';
import { RoutePlanner } from './planner.js';
import { PrimaryPositions } from './primary-position.js';
import { RequestScopes } from './request-scope.js';
import { runInScope, Scopes, withSessionOf } from './scopes.js';
import { Session } from './session.js';
import { SessionStore } from './session-store.js';
import { SessionTokens } from './session-tokens.js';
import { GuardedStore } from './stores/guard.js';
import { Telemetry } from './telemetry.js';

/** The parts a test may replace (as pg-pool accepts a `Client` class). */
export interface EngineParts {
  /** Makes the application's pool to each node. Default `new pg.Pool(config)`. */
  readonly pools?: PoolFactory;
  /** Makes the monitor. Default: a `Monitor` polling every node. */
  readonly monitor?: MonitorFactory;
}

/**
 * The composition root: builds the router's parts from its options and wires them together.
 * Per statement everything goes through {@link Dispatch}; per scope through {@link SessionStore}.
 */
export class Engine {
  readonly counters: Counters = newCounters();
  readonly nodes: NodePools;
  readonly monitor: MonitorView;
  /** The user's store behind timeouts and a circuit breaker. */
  readonly store: GuardedStore;
  /** Spans and metrics (no-ops without OpenTelemetry). */
  readonly telemetry: Telemetry;
  readonly scopes = new Scopes();
  readonly sessions: SessionStore;
  readonly tokens: SessionTokens;
  readonly planner: RoutePlanner;
  readonly dispatch: Dispatch;
  /** What framework adapters use. */
  readonly requests: RequestScopes;
  /** The routed client object of each pooled connection (what `connect()`, events and hooks give). */
  readonly clients: ClientRegistry<RoutedClient> = new ClientRegistry<RoutedClient>(
    (raw): RoutedClient => new RoutedClient(this.dispatch, this.telemetry, this.clients, raw),
  );
  readonly #warn: ReturnType<typeof rateLimited>;
  readonly #configWarn: ReturnType<typeof configWarn>;
  /** What runs for each node's pool: at start, and for each replica added later ({@link eachNode}). */
  readonly #attach: Array<(node: NodePool) => void> = [];
  /** The replica list in force (see {@link setReplicas}). */
  #replicaConfigs: ResolvedRouterOptions['replicas'];
  /** The replica change in progress: changes are made one after another. */
  #replicaChange: Promise<void> = Promise.resolve();
  /** Stops listening to the store's signs of loss. */
  readonly #unwatchStore: () => void;

  constructor(
    readonly options: ResolvedRouterOptions,
    parts: EngineParts = {},
  ) {
    const warn = (this.#warn = rateLimited(options.logger));
    this.#configWarn = configWarn(options.logger);
    this.#replicaConfigs = options.replicas;
    const nodeConfigs: NodeConfig[] = [
      { name: 'primary', role: 'primary', config: options.primary },
      ...options.replicas.map((r) => ({ name: r.name, role: 'replica' as const, config: r.config })),
    ];
    const hooked = nodeConfigs.map((node) => ({ ...node, config: withRoutedHooks(node.config, () => this.clients) }));
    this.nodes = new NodePools(hooked, parts.pools, replicaBounds(options.monitor.timeoutMs));
    // Round trips, not callers: a live sample shared by concurrent reads counts once.
    const counted = (role: 'primary' | 'replica') => (role === 'primary' ? this.counters.positionReads++ : this.counters.liveChecks++);
    this.monitor = (parts.monitor ?? ((nodes, monitorOptions, count) => new Monitor(nodes, monitorOptions, count)))(
      nodeConfigs,
      options.monitor,
      counted,
    );
    this.eachNode((node) => (node.isDown = () => this.monitor.state(node.name)?.status === 'down'));
    this.nodes.fences.pooled = () => this.monitor.state(this.nodes.primary.name)?.pooled;
    const classifier = new Classifier({ writeFunctions: options.writeFunctions, cacheSize: options.classifierCacheSize });
    this.store = new GuardedStore(options.store, options.storeGuard, {
      onOpen: (err) =>
        warn('store-open', 'position store unreachable; reads that need a session floor go to the primary', { error: String(err) }),
      onRecover: () =>
        warn('store-recovered', 'position store reachable again; positions it could not take are merged when their sessions load next'),
      onError: (reason) => this.telemetry.storeError(reason),
    });
    this.telemetry = new Telemetry(options.telemetry, nodeConfigs, this.monitor, this.store, options.debug);
    const primary = new PrimaryPositions(this.nodes.primary.pool, this.monitor, this.counters, options.monitor.timeoutMs);
    this.sessions = new SessionStore(this.store, primary, this.monitor, (name) => this.nodes.replicas.has(name), this.counters, warn);
    // A store that may have lost acknowledged positions (reconnected, restarted, failed over):
    // floors loaded from now on are raised to a primary position observed after the sign.
    this.#unwatchStore = this.store.onLoss((reason) => {
      this.sessions.storeMayHaveLost();
      if (reason === 'first use') return; // every process starts so; nothing to tell
      warn('store-loss', 'the position store may have lost positions; floors loaded from now on are raised to the primary position', {
        reason,
      });
    });
    this.tokens = new SessionTokens(options.tokenSecrets, this.sessions, this.monitor, this.counters, this.telemetry, warn);
    this.planner = new RoutePlanner(this.nodes, this.monitor, this.sessions, this.counters, options);
    this.dispatch = new Dispatch(classifier, this.planner, this.monitor, this.telemetry, this.scopes);
    this.requests = new RequestScopes(options.consistency, this.sessions, this.tokens, this.telemetry, this.dispatch);
    this.monitor.ready.then(
      () => this.#warnUnserving(),
      () => {},
    );
  }

  /**
   * Warns (once per node and problem) for each node, or each of `names`, that the monitor's first
   * poll found out of service: down, not a replica, the primary itself, of another cluster. A
   * wrong URL is said at start, not found later in `topology()`. (`router.doctor()` says more.)
   */
  #warnUnserving(names?: readonly string[]): void {
    const states = this.monitor.states();
    const primary = states.find((s) => s.role === 'primary');
    for (const state of states) {
      if (names && !names.includes(state.name)) continue;
      const verdict = nodeVerdict(state, primary);
      if (!verdict.serving && verdict.problem !== 'unknown') this.#warn(`node-${state.name}-${verdict.problem}`, verdict.message);
    }
  }

  /**
   * An idle pooled connection of `node` failed (the pool dropped it). A connection failure — the
   * server restarted, shut down or crashed — goes to the monitor at once: a restarted replica may
   * reopen below its cached position, so it leaves rotation, its position forgotten, until polls
   * have seen it again. Logged (rate-limited) unless the pool's 'error' event was `heard`.
   */
  idleConnectionError(node: string, err: unknown, heard = false): void {
    const failure = isConnectionError(err);
    if (failure) this.monitor.reportConnectionFailure(node, err);
    if (heard) return;
    const outcome = failure ? `it was dropped and ${node} is out of rotation until polls see it again` : 'it was dropped';
    this.#warn(`idle-error-${node}`, `an idle connection to ${node} failed; ${outcome}`, { error: String(err) });
  }

  /** Every node as configured now (the replica list as `setReplicas` last set it), with the user's own pg settings. */
  configuredNodes(): NodeConfig[] {
    return [
      { name: 'primary', role: 'primary', config: this.options.primary },
      ...this.#replicaConfigs.map((r) => ({ name: r.name, role: 'replica' as const, config: r.config })),
    ];
  }

  /** Runs `fn` for every node's pool now, and for each replica added later: one path for both. */
  eachNode(fn: (node: NodePool) => void): void {
    this.#attach.push(fn);
    for (const node of this.nodes.all) fn(node);
  }

  /**
   * Replaces the replica list (`router.setReplicas()`): a replica no longer listed, or listed with
   * other settings, leaves rotation at once and its pool ends once its statements in flight are
   * done; a new one gets a pool and is polled, and serves reads once the monitor has seen it up
   * (as at start). Resolves when both are done. Changes are made one after another.
   */
  setReplicas(list: unknown): Promise<void> {
    let next: ResolvedRouterOptions['replicas'];
    try {
      next = resolveReplicas(list, this.#configWarn); // a mistake rejects before anything changes
    } catch (err) {
      return Promise.reject(err);
    }
    const change = this.#replicaChange.then(() => this.#changeReplicas(next));
    this.#replicaChange = change.catch(() => {});
    return change;
  }

  async #changeReplicas(next: ResolvedRouterOptions['replicas']): Promise<void> {
    const current = new Map(this.#replicaConfigs.map((r) => [r.name, r]));
    const kept = new Set(next.filter((r) => isDeepStrictEqual(current.get(r.name)?.config, r.config)).map((r) => r.name));
    this.#replicaConfigs = next;
    const removed = [...current.keys()].filter((name) => !kept.has(name));
    const drained = removed.map(async (name) => {
      const node = this.nodes.remove(name); // out of rotation now
      await this.monitor.unwatch(name);
      if (!node) return;
      await node.pool.end().catch(() => {}); // after its checked-out connections are released
      this.nodes.backends.remove(node);
    });
    const added = next
      .filter((r) => !kept.has(r.name))
      .map((r) => {
        const node: NodeConfig = { name: r.name, role: 'replica', config: r.config };
        const pool = this.nodes.add({ ...node, config: withRoutedHooks(r.config, () => this.clients) });
        for (const attach of this.#attach) attach(pool);
        this.telemetry.addNode(node);
        return this.monitor.watch(node).then(() => this.#warnUnserving([r.name]));
      });
    await Promise.all([...drained, ...added]);
  }

  /** Runs `fn` as session `key`: loads its position lazily, stores the new one at the end. */
  async withSession<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const outer = this.scopes.current();
    const session = new Session(key);
    try {
      return await runInScope(withSessionOf(outer, session), fn);
    } finally {
      // Storing the position must not turn a request that succeeded into a failure.
      const stored = this.sessions.persistNow(session); // in the steady state nothing to store: no promise
      if (stored) await stored.catch(() => {});
      outer.session.fold(session);
    }
  }

  /**
   * Runs `fn` so that its reads observe at least the token's position: merged into the current
   * session scope, or into a fresh in-memory session outside one. A bad token is ignored
   * (counted), never thrown.
   */
  async withToken<T>(token: unknown, fn: () => Promise<T> | T): Promise<T> {
    const outer = this.scopes.current();
    await this.dispatch.started(); // a token is judged against the primary's WAL history, known once started
    let session = outer.session;
    if (session.key === undefined) {
      // A continuation of the current (in-memory) session, plus the token.
      session = new Session(undefined);
      session.fold(outer.session);
    }
    this.tokens.absorb(session, token);
    try {
      return await runInScope(withSessionOf(outer, session), fn);
    } finally {
      outer.session.fold(session);
    }
  }

  /** A token for the current session: everything it wrote or observed so far. */
  async currentToken(secret: Buffer): Promise<string> {
    const scope = this.scopes.current();
    await this.dispatch.started(); // its session (a request's, with its token) is judged against the primary's WAL history
    return this.tokens.issue(scope.session, secret, true);
  }

  async close(): Promise<void> {
    this.#unwatchStore();
    await this.sessions.drain();
    await this.monitor.close();
    await this.nodes.end();
    await this.store.close();
  }
}
