import { Classifier, type Classification, type StatementKind } from './classifier.js';
import type { MonitorView } from './monitor-view.js';
import type { NodePool } from './nodes.js';
import type { OtelSpan } from './otel.js';
import { sendSignal, signalledPid, type BackendSignal } from './backends.js';
import { isConnectionError, isNotSent, isPoolFull, isReadOnlyRefusal, isRecoveryConflict, tagTimeout } from './pg-args.js';
import { answered, caughtUp, flightFor, positioned } from './flight-outcome.js';
import type { RoutePlanner } from './planner.js';
import type { Route, RoutedStatement } from './route.js';
import type { Scope, Scopes } from './scopes.js';
import type { Telemetry } from './telemetry.js';
import { noteOutcome } from './statement-notes.js';
import type { TransactionState } from './transaction-effect.js';

const NO_TEXT: Classification = Object.freeze({ kind: 'write', detail: 'no-text' });
const REFUSED: Classification = Object.freeze({ kind: 'write', detail: 'refused-by-replica' });

export type { TransactionState } from './transaction-effect.js';

import type { Runner } from './runner.js';

export type { Runner } from './runner.js';

/**
 * The one path of a statement: classify → plan (synchronously when no I/O is needed) → route
 * span → execute → note the read or write on the session → once more elsewhere after a
 * connection error or recovery conflict on a replica, or on the primary, as a write, after a
 * replica refused a read as one (SQLSTATE 25006).
 */
export class Dispatch {
  #started: Promise<void> | undefined;
  /** True once the parser is loaded and the primary was polled once. */
  #isStarted = false;

  constructor(
    readonly classifier: Classifier,
    readonly planner: RoutePlanner,
    readonly monitor: MonitorView,
    readonly telemetry: Telemetry,
    readonly scopes: Scopes,
  ) {
    void this.started(); // neither rejects: a failed load or poll is a result
  }

  /** Whether the parser is loaded and the primary was polled once (before that, nothing is judged). */
  get isStarted(): boolean {
    return this.#isStarted;
  }

  /**
   * Resolves once the parser is loaded and the primary was polled once (awaited by the first
   * statements only): a floor's history is judged against the primary's. Replicas join rotation
   * as their first polls answer; until then reads go to the primary.
   */
  started(): Promise<void> {
    // A primary that did not answer its first poll (down at start): the replicas' first polls
    // too, so that reads have them (judged as well as they can be without the primary).
    this.#started ??= Promise.all([this.classifier.ready, this.monitor.primaryReady])
      .then(() => (this.monitor.state(this.planner.nodes.primary.name)?.status === 'up' ? undefined : this.monitor.ready))
      .then(() => {
        this.#isStarted = true;
      });
    return this.#started;
  }

  /** Routes and runs one statement; no extra promise layer when no I/O is needed to decide. */
  run<C, Q, R>(text: string | undefined, ctx: C, query: Q, runner: Runner<C, Q, R>): Promise<R> {
    const classification = text === undefined ? NO_TEXT : this.classifier.classifySync(text);
    if (!this.#isStarted) {
      if (runner.beforeStart && !classification.signal) return this.#runBeforeStart(text, classification, ctx, query, runner);
      return this.started().then(() => this.run(text, ctx, query, runner));
    }
    const values = classification.signal && runner.valuesOf ? runner.valuesOf(ctx, query) : false;
    const signalled = classification.signal && this.#signal(classification.signal, values, runner.refusal(ctx));
    if (signalled) return signalled as Promise<R>;
    return this.#attempt(text, classification, this.scopes.current(), ctx, query, runner, undefined);
  }

  /**
   * Before the start (the parser loading, the primary's first poll), a statement of the pool goes
   * to the primary at once, so that it asks for its connection when called, as pg.Pool's does: no
   * replica is in rotation yet, and the primary is fresh enough for any floor. Until the parser
   * has loaded it counts as a write. Its outcome is given only once the router has started, so
   * that nothing after it (a position read, a token, a stored floor) is judged before the
   * primary's WAL history is known.
   */
  #runBeforeStart<C, Q, R>(
    text: string | undefined,
    classification: Classification,
    ctx: C,
    query: Q,
    runner: Runner<C, Q, R>,
  ): Promise<R> {
    // The scope's session is not touched before the start (a request's is resolved lazily, with
    // its token, which can only be judged against the primary's WAL history).
    const scope = this.scopes.current();
    const primary = this.planner.nodes.primary;
    const route: Route = { node: primary, decision: { target: 'primary', reason: 'starting' }, floor: 0n, waitedMs: 0 };
    return this.#execute(text, primary, route, classification, scope, ctx, query, runner, undefined, this.started()).catch(
      (err: unknown) => {
        // The primary could not give a connection (down at start; not a full pool, which fails
        // as on pg): once started, the statement is routed as any other (a read may have a
        // replica by then). Nothing was sent.
        if (runsAgainOnceStarted(err)) return this.run(text, ctx, query, runner);
        throw err;
      },
    );
  }

  #attempt<C, Q, R>(
    text: string | undefined,
    classification: Classification,
    scope: Scope,
    ctx: C,
    query: Q,
    runner: Runner<C, Q, R>,
    exclude: Set<string> | undefined,
    checked?: ReadonlySet<string>,
  ): Promise<R> {
    const refused = runner.refusal(ctx);
    if (refused) return Promise.reject(refused);
    const pinned = runner.pinned(ctx, classification.kind);
    if (pinned) return this.#execute(text, pinned, undefined, classification, scope, ctx, query, runner, exclude);
    const statement = routedAs(classification.kind, runner.transaction(ctx) !== undefined);
    const preferred = runner.preferred(ctx);
    const flies = runner.flies?.(ctx, query) === true;
    const route = this.planner.planSync(statement, scope, preferred, exclude, flies, checked);
    if (route) return this.#execute(text, route.node, route, classification, scope, ctx, query, runner, exclude);
    return this.planner
      .plan(statement, scope, preferred, exclude, flies && !checked)
      .then((planned) => this.#execute(text, planned.node, planned, classification, scope, ctx, query, runner, exclude));
  }

  #execute<C, Q, R>(
    text: string | undefined,
    node: NodePool,
    route: Route | undefined,
    classification: Classification,
    scope: Scope,
    ctx: C,
    query: Q,
    runner: Runner<C, Q, R>,
    exclude: Set<string> | undefined,
    after?: Promise<void>,
  ): Promise<R> {
    const retry = exclude !== undefined;
    const span = route && runner.needsSpan(ctx, node) ? this.#openSpan(route, classification.kind, scope, retry) : undefined;
    // Outside a transaction, a statement a replica fails may run elsewhere: once more on another
    // node after a lost connection or recovery conflict; and a read the replica refused as a
    // write on the primary (even after such a retry: the primary is where it belongs).
    const mayRetry = node.role === 'replica' && runner.mayRetry(ctx, query);
    const retryable = !retry && mayRetry;
    const refusable = mayRetry && classification.kind === 'read';
    const position = route && flightFor(route, classification, scope, () => runner.flies?.(ctx, query) === true);
    const ran = runner.execute(ctx, node, span, query, classification, scope, after !== undefined, position);
    // `after`: the outcome is noted, and given, only once it resolves (see #runBeforeStart).
    const outcome = after
      ? ran.then(
          (r) => after.then(() => r),
          (e: unknown) => after.then(() => Promise.reject(e)),
        )
      : ran;
    return outcome.then(
      (result) => {
        node.served++;
        if (position?.mode === 'replay-before' && !caughtUp(this.monitor, node, position, route!.floor)) {
          // The replica had not replayed the floor when the read ran: its answer is dropped.
          this.telemetry.end(span && !runner.holds(ctx, span) ? span : undefined, undefined, true);
          return this.#attempt(text, classification, scope, ctx, query, runner, exclude, new Set([node.name]));
        }
        if (position?.mode === 'replay-before') this.telemetry.replayChecked(span, position.lsn!);
        const covered = position !== undefined && positioned(this.monitor, scope.session, position);
        this.#settle(classification, node, scope, ctx, runner, true, undefined, covered);
        if (span && !runner.holds(ctx, span)) this.telemetry.end(span);
        return result;
      },
      (err: unknown) => {
        tagTimeout(err);
        if (!isNotSent(err) && !isPoolFull(err)) node.served++; // a statement that waited for a connection in vain was never sent
        this.#settle(classification, node, scope, ctx, runner, false, err);
        const own = span && !runner.holds(ctx, span) ? span : undefined;
        if (position?.mode === 'replay-before' && answered(err) && !caughtUp(this.monitor, node, position, route!.floor)) {
          // Its own check found the replica behind the floor: the error may come from what it
          // does not have yet, so it is dropped as an answer would be.
          this.telemetry.end(own, err, true);
          return this.#attempt(text, classification, scope, ctx, query, runner, exclude, new Set([node.name]));
        }
        if (refusable && isReadOnlyRefusal(err) && runner.abandon(ctx, err)) {
          // A write the classifier could not see: the primary runs it, and it counts as a write.
          // Its text is a write from now on (while cached), so it goes there first next time.
          this.telemetry.end(own, err, true);
          const write = text === undefined ? REFUSED : this.classifier.refusedByReplica(text);
          return this.#attempt(text, write, scope, ctx, query, runner, new Set([node.name]));
        }
        // A full pool is no server failure: past the user's connectionTimeoutMillis the statement
        // fails as on pg.Pool; past the router's own bound (pg would have waited on) it runs on a
        // replica with no caller waiting, or on the primary (which waits at max: see
        // waitingAtMax), the replica staying in rotation.
        const full = isPoolFull(err);
        const lost = isConnectionError(err) && !full;
        const spill = full && node.ownWaitBound === true;
        if (retryable && (lost || spill || isRecoveryConflict(err)) && runner.abandon(ctx, err)) {
          this.telemetry.end(own, err, true);
          if (lost) this.monitor.reportConnectionFailure(node.name, err);
          const elsewhere = spill ? this.#fullReplicas(node) : new Set([node.name]);
          return this.#attempt(text, classification, scope, ctx, query, runner, elsewhere);
        }
        this.telemetry.end(own, err, after !== undefined && runsAgainOnceStarted(err)); // (see #runBeforeStart)
        // A write whose answer was lost may commit later: its backend is ended before the error returns.
        const fenced = node.role === 'primary' && classification.kind !== 'read' && this.planner.nodes.fences.after(err, scope.session);
        if (fenced) return fenced;
        throw err;
      },
    );
  }

  /**
   * `SELECT pg_cancel_backend(pid)` / `pg_terminate_backend(pid)`: sent, on a connection of its
   * own, to the backend the pid means ({@link Backends.target}), or refused with a stable code.
   * Undefined (routed as any statement: to the primary) when the pid is not an integer.
   */
  #signal(signal: BackendSignal, values: readonly unknown[] | undefined | false, refused: Error | undefined): Promise<unknown> | undefined {
    const pid = values === false ? undefined : signalledPid(signal, values);
    if (pid === undefined) return undefined;
    if (refused) return Promise.reject(refused);
    return Promise.resolve(pid).then((p) => sendSignal(this.planner.nodes.backends.target(p), signal));
  }

  /** `node` and the other replicas whose pools have callers waiting: where a read spilled from `node` must not go. */
  #fullReplicas(node: NodePool): Set<string> {
    const full = new Set([node.name]);
    for (const [name, replica] of this.planner.nodes.replicas) if (replica.pool.waitingCount > 0) full.add(name);
    return full;
  }

  #openSpan(route: Route, kind: StatementKind, scope: Scope, retry: boolean): OtelSpan | undefined {
    return this.telemetry.startRouteSpan(
      route,
      kind,
      this.planner.levelOf(scope),
      () => this.monitor.state(route.node.name)?.replayLsn,
      retry,
    );
  }

  #settle<C, Q, R>(
    classification: Classification,
    node: NodePool,
    scope: Scope,
    ctx: C,
    runner: Runner<C, Q, R>,
    ok: boolean,
    err: unknown,
    readCovered = false,
  ): void {
    const ended = this.note(classification, node, scope, runner.transaction(ctx), ok, err, readCovered);
    runner.settled?.(ctx, node, ended);
  }

  /** Records what a statement did to its session and its connection's transaction (see {@link noteOutcome}). */
  note(
    classification: Classification,
    node: NodePool,
    scope: Scope,
    transaction: TransactionState | undefined,
    ok: boolean,
    err?: unknown,
    readCovered = false,
  ): boolean {
    return noteOutcome(this.planner.levelOf(scope), classification, node, scope, transaction, ok, err, readCovered);
  }
}

/** A statement of the pool the primary could not take before the start: it runs again once started. */
function runsAgainOnceStarted(err: unknown): boolean {
  return isNotSent(err) && !isPoolFull(err);
}

/**
 * How the planner sees a statement kind: reads may use a replica, and so may `BEGIN READ ONLY`
 * where the runner keeps the transaction on its connection (a checked-out client; the pool
 * would leave a replica connection idle in a transaction).
 */
function routedAs(kind: StatementKind, tracksTransactions: boolean): RoutedStatement {
  return kind === 'read' || (kind === 'begin-read-only' && tracksTransactions) ? 'read' : 'other';
}
