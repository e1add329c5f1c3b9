import type pg from 'pg';
import type { Runner } from './dispatch.js';
import { waitingAtMax, type NodeConnectionPool } from './nodes.js';
import { markBackend, markNotSent, type NormalizedQuery, type QueryArg } from './pg-args.js';
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
  execute(telemetry, node, span, q, classification, _scope, beforeStart) {
    // A write (and any statement before the start) opens its connection first, so that a failure
    // to connect is known not to have sent it: a write cannot have committed; before the start,
    // the statement is routed again once started.
    const twoSteps = node.role === 'primary' && (classification.kind !== 'read' || beforeStart);
    return telemetry.within(span, () =>
      waitingAtMax(node, () => (twoSteps ? sendOn(node.pool, q.arg, q.values) : node.pool.query(q.arg as pg.QueryConfig, q.values))),
    );
  },
};

/** pg.Pool#query in two steps: a failure to connect is marked as never sent. */
async function sendOn(pool: NodeConnectionPool, arg: QueryArg, values: unknown[] | undefined): Promise<pg.QueryResult> {
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
    const result = await client.query(arg as pg.QueryConfig, values);
    client.release();
    return result;
  } catch (err) {
    markBackend(err, client);
    client.release(err as Error); // as pg.Pool#query does: a connection that failed a query is not reused
    throw err;
  } finally {
    client.removeListener('error', ignore);
  }
}
