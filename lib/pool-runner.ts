import type pg from 'pg';
import type { Runner } from './dispatch.js';
import { waitingAtMax, type NodeConnectionPool } from './nodes.js';
import { markBackend, markNotSent, type NormalizedQuery } from './pg-args.js';
import { canFly, flyOn, spentConnection } from './position-flight.js';
import type { Telemetry } from './telemetry.js';

/** How the pool runs a routed statement: on a pooled connection of its node, released after it. */
export const POOL_RUNNER: Runner<Telemetry, NormalizedQuery, pg.QueryResult> = {
  transaction: () => undefined,
  refusal: () => undefined,
  pinned: () => undefined,
  preferred: () => undefined,
  needsSpan: () => true,
  holds: () => false,
  valuesOf: (_ctx, q) => (q.submittable ? false : q.values),
  beforeStart: true,
  mayRetry: () => true,
  abandon: () => true,
  flies: (_ctx, q) => q.submittable === undefined && canFly(q.arg, q.values),
  execute(telemetry, node, span, q, classification, _scope, beforeStart, position) {
    // A write (and any statement before the start) opens its connection first, so that a failure
    // to connect is known not to have sent it: a write cannot have committed; before the start,
    // the statement is routed again once started. A statement flying with a position too.
    const twoSteps = position !== undefined || (node.role === 'primary' && (classification.kind !== 'read' || beforeStart));
    const run = position
      ? (client: pg.PoolClient) => flyOn(client, q.arg as string | pg.QueryConfig, q.values, position)
      : (client: pg.PoolClient) => client.query(q.arg as pg.QueryConfig, q.values);
    return telemetry.within(span, () =>
      waitingAtMax(node, () => (twoSteps ? sendOn(node.pool, run) : node.pool.query(q.arg as pg.QueryConfig, q.values))),
    );
  },
};

/** pg.Pool#query in two steps (`run` on a connection of `pool`): a failure to connect is marked as never sent. */
async function sendOn(pool: NodeConnectionPool, run: (client: pg.PoolClient) => Promise<pg.QueryResult>): Promise<pg.QueryResult> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    markNotSent(err);
    throw err;
  }
  // A connection dying mid-query is also emitted as 'error' on the client: the query rejects with
  // it, so the event needs a listener, as pg.Pool#query gives it.
  const ignore = () => {};
  client.on('error', ignore);
  try {
    const result = await run(client);
    client.release(spentConnection(client)); // a flight's connection may have failed after the statement's answer
    return result;
  } catch (err) {
    markBackend(err, client);
    client.release(err as Error); // as pg.Pool#query does: a connection that failed a query is not reused
    throw err;
  } finally {
    client.removeListener('error', ignore);
  }
}
