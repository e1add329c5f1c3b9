import type pg from 'pg';
import type { ClientRegistry } from './client-registry.js';
import { RoutedClient } from './client.js';
import type { Dispatch } from './dispatch.js';
import type { NodePool } from './nodes.js';
import { isConnectionError } from './pg-args.js';
import type { RoutePlanner } from './planner.js';
import type { Scope } from './scopes.js';

const POOL_FULL = /timeout exceeded when trying to connect/;

/**
 * `router.pool.connect()`: checks out a connection, as pg.Pool does (waiting at `max`, failing on
 * `connectionTimeoutMillis`, a server that is down or a hook's error), on the node the session
 * would read from now without any I/O — a ready replica, else the primary — and returns its
 * routed client. The first statement may still move it: a write goes to the primary, a read to
 * where the session may read by then. A replica that cannot give a connection is reported and
 * the primary gives it instead.
 */
export async function checkOut(dispatch: Dispatch, clients: ClientRegistry<RoutedClient>, scope: Scope): Promise<RoutedClient> {
  const { planner, monitor } = dispatch;
  let node = await readNode(planner, scope);
  let raw: pg.PoolClient;
  try {
    raw = await node.pool.connect();
  } catch (err) {
    if (node.role !== 'replica' || !isConnectionError(err)) throw err;
    // Its pool being full for `connectionTimeoutMillis` says nothing about the server.
    if (!POOL_FULL.test((err as Error).message)) monitor.reportConnectionFailure(node.name, err);
    node = planner.nodes.primary;
    raw = await node.pool.connect();
  }
  const client = clients.of(raw);
  RoutedClient.checkOut(client, node, raw);
  return client;
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
