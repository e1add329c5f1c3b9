// A connection its server ends alone (a FATAL that is no shutdown) is no outage, and the statement
// it ended is still retried like any recovery conflict outside a transaction. Database-free: fake
// pools whose replica connection fails its first statement as the server would.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { lossIsNoOutage, wasTerminated, watchEndedAlone } from '../../lib/backends.js';
import { RoutedPool } from '../../lib/pool.js';
import { makeScope, runInScope } from '../../lib/scopes.js';
import { Session } from '../../lib/session.js';
import type pg from 'pg';
import { fakeEngine } from '../helpers/fake-parts.js';

type Conn = { connection: EventEmitter; query: (text: string) => Promise<unknown> };

/** A checked-out client's read on a replica whose first statement fails with SQLSTATE 40001 at `severity`. */
async function readThroughConflict(severity: 'FATAL' | 'ERROR'): Promise<{ servedBy: string; marked: boolean[] }> {
  const fake = fakeEngine();
  await fake.engine.dispatch.started();
  fake.monitor.set('r1', { replayLsn: 1000n });
  fake.monitor.set('r2', { replayLsn: 1000n });
  let failed = false;
  const clients: object[] = [];
  for (const pool of fake.pools.values()) {
    const connect = pool.connect.bind(pool);
    pool.connect = (async () => {
      const client = (await connect()) as unknown as Conn;
      client.connection = new EventEmitter();
      watchEndedAlone(client as unknown as pg.ClientBase); // as RoutedPool's 'connect' listener does
      clients.push(client);
      client.query = (text: string) => {
        if (pool.name === 'primary' || failed) return pool.query(text);
        failed = true;
        const err = Object.assign(new Error('terminating connection due to conflict with recovery'), { code: '40001', severity });
        const rejected = Promise.reject(err);
        client.connection.emit('errorMessage', err); // pg's own listener rejects the statement; ours runs after it
        return rejected;
      };
      return client;
    }) as unknown as typeof pool.connect;
  }
  const pool = new RoutedPool(fake.engine);
  const session = new Session('user:1');
  session.loaded = true;
  return runInScope(makeScope(session, undefined), async () => {
    const client = await pool.connect();
    try {
      const { rows } = await client.query<{ node: string }>('select 1');
      return { servedBy: rows[0]!.node, marked: clients.map(lossIsNoOutage) };
    } finally {
      client.release();
    }
  });
}

describe('a connection its server ends alone', () => {
  it('an ERROR 40001 on a replica (outside a transaction) runs once more elsewhere', async () => {
    const { servedBy } = await readThroughConflict('ERROR');
    expect(servedBy).not.toBe('');
  });

  it('so does a FATAL 40001: its connection is no outage, and not "terminated by the router" (which would forbid the retry)', async () => {
    const { servedBy, marked } = await readThroughConflict('FATAL');
    expect(servedBy).not.toBe('');
    expect(marked).toContain(true);
  });

  it('a shutdown FATAL (57P01) still counts as an outage; a client of another Client class without a connection is left alone', () => {
    const client = { connection: new EventEmitter() };
    watchEndedAlone(client as unknown as pg.ClientBase);
    client.connection.emit('errorMessage', { severity: 'FATAL', code: '57P01' });
    expect(lossIsNoOutage(client)).toBe(false);
    client.connection.emit('errorMessage', { severity: 'FATAL', code: '25P03' }); // idle-in-transaction timeout
    expect([lossIsNoOutage(client), wasTerminated(client)]).toEqual([true, false]);
    expect(() => watchEndedAlone({} as pg.ClientBase)).not.toThrow();
  });
});
