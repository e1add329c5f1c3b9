import type pg from 'pg';
import type { ClientRegistry } from './client-registry.js';
import { RoutedClient } from './client.js';
import type { Dispatch } from './dispatch.js';
import { waitingAtMax, type NodePool } from './nodes.js';
import { isConnectionError, isPoolFull } from './pg-args.js';
import type { RoutePlanner } from './planner.js';
import type { Scope } from './scopes.js';

/**
 * `router.pool.connect()`: checks out a connection, as pg.Pool does (waiting at `max`, failing on
 * `connectionTimeoutMillis`, a server that is down or a hook's error), on the node the session
 * would read from now — a ready replica, else the primary; see {@link readNode} — and returns its
 * routed client. The first statement may still move it: a write goes to the primary, a read to
 * where the session may read by then. A replica that cannot give a connection because it is down
 * is reported, and the primary gives it instead; a full pool fails the checkout, as with pg, past
 * the user's `connectionTimeoutMillis` (past the router's own bound, the primary gives it, and
 * the primary's own checkouts wait on at `max`, as pg's do).
 */
export function checkOut(dispatch: Dispatch, clients: ClientRegistry<RoutedClient>, scope: Scope): Promise<RoutedClient> {
  const { planner } = dispatch;
  // Known without I/O (the usual case), the connection is asked for at once, as pg.Pool does
  // (`waitingCount` counts the call before it returns). Before the router has started (the parser
  // and the primary's first poll) nothing can be judged and no replica is in rotation: the primary,
  // without waiting, so that a checkout fails or waits as pg's would (the first statement waits
  // for the start, and may move the client to a replica by then).
  const known = dispatch.isStarted ? planner.planSync('read', scope)?.node : planner.nodes.primary;
  const checkedOut = known ? connectOn(known, dispatch) : readNode(planner, scope).then((node) => connectOn(node, dispatch));
  return checkedOut.then(({ node, raw }) => {
    const client = clients.of(raw);
    RoutedClient.checkOut(client, node, raw);
    return client;
  });
}

/** A connection of `node`, or of the primary when the replica `node` cannot give one. */
function connectOn(node: NodePool, dispatch: Dispatch): Promise<{ node: NodePool; raw: pg.PoolClient }> {
  return waitingAtMax(node, () => node.pool.connect()).then(
    (raw) => ({ node, raw }),
    (err: unknown) => {
      // A full pool past the user's connectionTimeoutMillis fails the checkout, as pg.Pool's
      // would; past the router's own bound (pg would have waited on), the primary gives it.
      if (node.role !== 'replica' || !isConnectionError(err)) throw err;
      const full = isPoolFull(err);
      if (full && !node.ownWaitBound) throw err;
      if (!full) dispatch.monitor.reportConnectionFailure(node.name, err);
      const primary = dispatch.planner.nodes.primary;
      return waitingAtMax(primary, () => primary.pool.connect()).then((raw) => ({ node: primary, raw }));
    },
  );
}

/**
 * Where a read of the session would go now: after loading its floor if need be (the I/O its first
 * read would do anyway), but never waiting for a replica or covering reads; the primary when in
 * doubt.
 */
async function readNode(planner: RoutePlanner, scope: Scope): Promise<NodePool> {
  const now = planner.planSync('read', scope);
  if (now) return now.node;
  try {
    await planner.sessions.floorFor(scope.session);
  } catch {
    return planner.nodes.primary; // the store or the primary could not say: the first read will ask again
  }
  return planner.planSync('read', scope)?.node ?? planner.nodes.primary;
}
