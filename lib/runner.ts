import type { Classification, StatementKind } from './classifier.js';
import type { NodePool } from './nodes.js';
import type { OtelSpan } from './otel.js';
import type { FlightPosition } from './position-flight.js';
import type { Scope } from './scopes.js';
import type { TransactionState } from './transaction-effect.js';

/**
 * Where a statement runs once routed: the pool runs each on a pooled connection of its node; a
 * checked-out client on the connection it is bound to. Everything else — classify, plan, span,
 * note what ran, retry once elsewhere — is the dispatch's (lib/dispatch.ts), the same for both.
 */
export interface Runner<C, Q, R> {
  /** The connection's transaction; undefined when every statement stands alone (the pool). */
  transaction(ctx: C): TransactionState | undefined;
  /** Why no statement can run any more (a released client), or undefined. Asked before routing. */
  refusal(ctx: C): Error | undefined;
  /** The node the statement must stay on (a transaction, an open cursor), or undefined to route it. */
  pinned(ctx: C, kind: StatementKind): NodePool | undefined;
  /** A node to prefer when routing (the client's current one). */
  preferred(ctx: C): string | undefined;
  /** Whether a statement routed to `node` gets a route span of its own (else it joins its connection's). */
  needsSpan(ctx: C, node: NodePool): boolean;
  /**
   * Whether the runner took over `span` (a client's binding span lives as long as the binding and
   * is ended by the runner); otherwise the dispatch ends it after the statement.
   */
  holds(ctx: C, span: OtelSpan): boolean;
  /** A plain statement's parameter values (`false` for a submittable: the router sends no signal for one). */
  valuesOf?(ctx: C, query: Q): readonly unknown[] | undefined | false;
  /**
   * Whether a statement may run before the router has started (on the primary, see
   * `Dispatch.run`): only where each statement stands alone (the pool), since a client's
   * transaction is followed by classifying its statements.
   */
  readonly beforeStart: boolean;
  /** Whether the statement can fly with a position read (see lib/position-flight.ts); absent: never. */
  flies?(ctx: C, query: Q): boolean;
  /** Whether a failure on a replica may be retried elsewhere (asked before the statement runs). */
  mayRetry(ctx: C, query: Q): boolean;
  /**
   * Runs the statement on `node`. A failure to get a connection must be marked with
   * `markNotSent` (a write that was never sent cannot have committed; before the start,
   * `beforeStart`, a statement the primary could not take is routed again once started).
   * `position`: read that position in the same flight (only asked of runners that {@link flies}).
   */
  execute(
    ctx: C,
    node: NodePool,
    span: OtelSpan | undefined,
    query: Q,
    kind: Classification,
    scope: Scope,
    beforeStart: boolean,
    position?: FlightPosition,
  ): Promise<R>;
  /**
   * The statement failed on a replica with an error worth another node: drop that connection.
   * False when the runner cannot go on (it was released meanwhile): then there is no retry.
   */
  abandon(ctx: C, err: unknown): boolean;
  /** After the outcome was noted; `transactionEnded`: a COMMIT or ROLLBACK closed the transaction. */
  settled?(ctx: C, node: NodePool, transactionEnded: boolean): void;
}
