// What a statement's flight read beside it (lib/position-flight.ts) means for its route and its
// session: the one place flights are asked for and their positions taken in.
import type { Classification } from './classifier.js';
import type { Lsn } from './lsn.js';
import type { MonitorView } from './monitor-view.js';
import type { NodePool } from './nodes.js';
import { isConnectionError, isNotSent, isPoolFull, isReadOnlyRefusal, isTimeout } from './pg-args.js';
import { flightPosition, type FlightPosition } from './position-flight.js';
import type { Route } from './route.js';
import type { Scope } from './scopes.js';
import type { Session } from './session.js';

/**
 * The position a statement flies with, if any:
 * - the planner's live check of a replica (`replay-before`, see `RoutePlanner.planSync`);
 * - the primary's position after a read the session's own write sent there (`insert-after`):
 *   the scope's writes acknowledged before it are then positioned, and the read covered, without
 *   a round trip of their own (see `SessionStore.persist`). Not while a write of the session has
 *   an unknown outcome (`fenced`): only a position after its backend ended covers it.
 */
export function flightFor(route: Route, classification: Classification, scope: Scope, flies: () => boolean): FlightPosition | undefined {
  // (The scope's session is read only then: a request's is resolved lazily, not before the start.)
  if (route.flight) return flightPosition(route.flight, scope.session.writes);
  const own = route.decision.target === 'primary' && route.decision.reason === 'wrote-in-scope';
  if (!own || classification.kind !== 'read' || scope.session.fenced || !flies()) return undefined;
  return flightPosition('insert-after', scope.session.writes);
}

/**
 * A replica read's own live position (`replay-before`), folded into the monitor's cache: whether
 * the read's outcome stands — the replica had replayed `floor`, as the server the monitor watches
 * there (the same start time; another one's LSN means nothing against the floor).
 */
export function caughtUp(monitor: MonitorView, node: NodePool, position: FlightPosition, floor: Lsn): boolean {
  if (position.lsn === undefined) return false;
  return monitor.noteReplayPosition(node.name, position.lsn, position.sentAt, position.started) && position.lsn >= floor;
}

/**
 * Whether a failed statement answered (an error of its own, which may come from what the server
 * holds: a row it does not have yet), rather than never ran or was stopped: a connection lost, a
 * connection never had, a cancel, a timeout. An answer from a replica behind the floor is dropped.
 */
export function answered(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  // (A replica's refusal of a write, 25006, is no answer either: the statement goes to the primary, as a write.)
  return !isConnectionError(err) && !isNotSent(err) && !isPoolFull(err) && !isTimeout(err) && !isReadOnlyRefusal(err) && code !== '57014';
}

/**
 * The primary's position after a read (`insert-after`) taken in: the session's floor raised to it,
 * its reads that ended before the flight was sent covered, its writes positioned if none was
 * acknowledged since the flight was planned. True when the read itself is covered (not to be
 * noted as an uncovered read on the primary).
 */
export function positioned(monitor: MonitorView, session: Session, position: FlightPosition): boolean {
  if (position.mode !== 'insert-after' || position.lsn === undefined) return false;
  const lsn = monitor.notePrimaryPosition(position.lsn, position.sentAt);
  session.cover({ lsn, sentAt: position.sentAt }, monitor.primaryIdentity());
  if (session.writes === position.writesBefore) session.writePending = false;
  return true;
}
