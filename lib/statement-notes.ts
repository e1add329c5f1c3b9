// What a statement did, noted on its session and its connection's transaction: the one place
// reads, writes and transaction ends are recorded (for the pool and checked-out clients alike).
import type { Classification, StringStep } from './classifier.js';
import { isMonotonic, type Consistency } from './consistency.js';
import type { NodePool } from './nodes.js';
import { isNotSent } from './pg-args.js';
import type { Scope } from './scopes.js';
import { NO_TRANSACTION, stringEffect, type TransactionState } from './transaction-effect.js';

/**
 * Records what a statement did to its session and its connection's transaction, and returns
 * whether it ended the transaction:
 * - a read that succeeded: where the session read (monotonic reads), unless a position taken after
 *   it already covers it (`readCovered`: see lib/flight-outcome.ts);
 * - outside a transaction, a write on the primary, even a failed one unless it was never sent
 *   (a lost connection after COMMIT may still have committed);
 * - inside one, a COMMIT (even a failed one) after any statement of the transaction ran on the
 *   primary other than a read (the COMMIT itself counts: a read may call a function that
 *   writes) — except the COMMIT of a `BEGIN READ ONLY` transaction, where PostgreSQL refuses
 *   every write; a transaction on a replica writes nothing;
 * - a multi-statement string: what its steps did (see {@link stringEffect}).
 */
export function noteOutcome(
  level: Consistency,
  classification: Classification,
  node: NodePool,
  scope: Scope,
  transaction: TransactionState | undefined,
  ok: boolean,
  err?: unknown,
  readCovered = false,
): boolean {
  if (classification.steps) return noteString(level, classification.steps, node, scope, transaction, ok, err);
  const kind = classification.kind;
  if (kind === 'begin' || kind === 'begin-read-only') {
    if (ok && transaction) {
      // When unsure, the connection may be in a block that wrote already (BEGIN only warns there).
      if (!transaction.unsure) transaction.wrote = false;
      transaction.readOnly = kind === 'begin-read-only' && !transaction.unsure;
      transaction.open = true;
      transaction.unsure = false;
    }
    return false;
  }
  if (kind === 'read' && ok && !readCovered) noteRead(level, scope, node);
  if (!transaction?.open || transaction.unsure) {
    if (node.role === 'primary' && kind === 'write' && (ok || !isNotSent(err))) scope.session.noteWrite();
    if (!transaction?.open) return false;
  }
  const ends = kind === 'commit' || kind === 'rollback';
  if (node.role === 'primary' && kind !== 'read' && !(ends && transaction.readOnly)) transaction.wrote = true;
  if (!ends) return false;
  if (kind === 'commit' && transaction.wrote) scope.session.noteWrite();
  transaction.wrote = false;
  // AND CHAIN opens the next transaction at once, on the same connection (it fails outside one).
  if (classification.detail.endsWith('-and-chain') && ok) {
    transaction.unsure = false;
    return false;
  }
  transaction.open = false;
  transaction.unsure = false;
  transaction.readOnly = false;
  return true;
}

/**
 * A multi-statement string ran (or failed part-way): note the writes it may have committed,
 * its reads, and where it left the connection's transaction. Through the pool (no transaction
 * kept), a write it left uncommitted in an open block counts too: nobody can commit it later
 * through the router.
 */
function noteString(
  level: Consistency,
  steps: readonly StringStep[],
  node: NodePool,
  scope: Scope,
  transaction: TransactionState | undefined,
  ok: boolean,
  err: unknown,
): boolean {
  if (!ok && isNotSent(err)) return false;
  if (ok && steps.includes('read')) noteRead(level, scope, node);
  const after = stringEffect(steps, transaction ?? NO_TRANSACTION, node.role === 'primary', ok);
  if (after.committed || (!transaction && after.open && after.wrote)) scope.session.noteWrite();
  if (!transaction) return false;
  const ended = transaction.open && !after.open;
  transaction.open = after.open;
  transaction.wrote = after.wrote;
  transaction.unsure = after.unsure;
  transaction.readOnly = false; // a string may have ended it and begun another: no longer known
  return ended;
}

/** A read ran on `node`: remember it, so later reads of the session never go back in time. */
function noteRead(level: Consistency, scope: Scope, node: NodePool): void {
  if (!(isMonotonic(level) || level === 'primary' || scope.forcePrimary)) return;
  scope.session.noteRead(node.name, performance.now());
}
