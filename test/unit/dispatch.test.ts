// The one statement path (lib/dispatch.ts) through the pool and a checked-out client, over fake
// node pools and a fake monitor: where statements go, what is noted, retries, released clients.
import { describe, expect, it } from 'vitest';
import { RoutedPool } from '../../lib/pool.js';
import { makeScope, runInScope } from '../../lib/scopes.js';
import { Session } from '../../lib/session.js';
import { fakeEngine } from '../helpers/fake-parts.js';

/** A pool over fake nodes with both replicas caught up, and a keyed session to run in. */
/** A fake engine's routed pool, once the router has started (the parser loaded). */
async function setup() {
  const fake = fakeEngine();
  await fake.engine.dispatch.started();
  fake.monitor.set('r1', { replayLsn: 1000n });
  fake.monitor.set('r2', { replayLsn: 1000n });
  const pool = new RoutedPool(fake.engine);
  const session = new Session('user:1');
  session.loaded = true; // nothing stored: no floor
  const inSession = <T>(fn: () => Promise<T>) => runInScope(makeScope(session, undefined), fn);
  const served = (name: string) => fake.engine.nodes.all.find((n) => n.name === name)!.served;
  return { ...fake, pool, session, inSession, served };
}

describe('dispatch (database-free)', () => {
  it('pool.query: reads on a replica, writes on the primary (noted); a bare COMMIT or BEGIN is no write', async () => {
    const { pool, session, inSession, served } = await setup();
    const read = await inSession(() => pool.query('select 1'));
    expect(read.rows[0]!.node).toMatch(/^r[12]$/);
    expect(session.uncovered).toEqual([read.rows[0]!.node]);
    await inSession(() => pool.query('commit'));
    await inSession(() => pool.query('begin'));
    expect(session.writePending).toBe(false);
    expect(served('primary')).toBe(2);
    await inSession(() => pool.query('update t set x = 1'));
    expect(session.writePending).toBe(true);
  });

  it('a checked-out client: a transaction that wrote is one write at COMMIT; a read-only one on a replica writes nothing and lets go of it', async () => {
    const { pool, session, inSession } = await setup();
    await inSession(async () => {
      const client = await pool.connect();
      await client.query('begin');
      await client.query('insert into t values (1)');
      expect(session.writePending).toBe(false); // not committed yet
      await client.query('commit');
      expect(session.writePending).toBe(true);
      client.release();
    });
    session.writePending = false;
    await inSession(async () => {
      const client = await pool.connect();
      await client.query('begin read only');
      expect(client.node).toMatch(/^r[12]$/);
      await client.query('select 1');
      await client.query('commit');
      expect(client.node).toBeUndefined(); // unbound: the next statement is routed afresh
      client.release();
    });
    expect(session.writePending).toBe(false);
  });

  it('BEGIN READ ONLY through pool.query goes to the primary (the pool would leave a replica connection in a transaction)', async () => {
    const { pool, inSession } = await setup();
    const result = await inSession(() => pool.query('begin read only'));
    expect(result.rows[0]!.node).toBe('primary');
  });

  it('a read failing on a replica with a connection error runs once more elsewhere, and the replica is reported down', async () => {
    const { pool, pools, monitor, inSession } = await setup();
    monitor.set('r2', { status: 'down' });
    pools.get('r1')!.fail = Object.assign(new Error('Connection terminated unexpectedly'), {});
    const result = await inSession(() => pool.query('select 1'));
    expect(result.rows[0]!.node).toBe('primary');
    expect(monitor.state('r1')!.status).toBe('down');
  });

  it('a read failing with an error that is not a connection error is not retried', async () => {
    const { pool, pools, monitor, inSession } = await setup();
    monitor.set('r2', { status: 'down' });
    pools.get('r1')!.fail = Object.assign(new Error('relation "t" does not exist'), { code: '42P01' });
    await expect(inSession(() => pool.query('select 1'))).rejects.toMatchObject({ code: '42P01' });
    expect(monitor.state('r1')!.status).toBe('up');
  });

  it('a client released while its connection is being opened: the statement fails as closed, nothing noted, the node stays up', async () => {
    const { pool, pools, monitor, session, inSession, served } = await setup();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const client = await inSession(() => pool.connect()); // checked out on a replica: the write moves it
    expect(client.node).toMatch(/^r[12]$/);
    for (const p of pools.values()) p.connectGate = gate;
    const write = inSession(() => client.query('update t set x = 1'));
    await new Promise((resolve) => setTimeout(resolve, 5));
    client.release();
    for (const p of pools.values()) p.connectGate = undefined;
    open();
    await expect(write).rejects.toThrow('Client was closed and is not queryable');
    expect(session.writePending).toBe(false);
    expect(served('primary')).toBe(0);
    expect(monitor.state('primary')!.status).toBe('up');
    expect(pools.get('primary')!.clients[0]!.released).toBe(true); // the connection went back
    await expect(inSession(() => client.query('select 1'))).rejects.toThrow('Client was closed');
  });

  it('a write refused at connect was never sent: it is not noted as a write', async () => {
    const { pool, primary, session, inSession } = await setup();
    primary.down = true;
    await expect(inSession(() => pool.query('update t set x = 1'))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(session.writePending).toBe(false);
    const client = await pool.connect();
    await expect(inSession(() => client.query('update t set x = 1'))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(session.writePending).toBe(false);
    client.release();
  });

  it('a write that failed after it was sent may have committed: it is noted', async () => {
    const { pool, primary, session, inSession } = await setup();
    primary.fail = Object.assign(new Error('Connection terminated unexpectedly'), {});
    await expect(inSession(() => pool.query('update t set x = 1'))).rejects.toThrow('Connection terminated');
    expect(session.writePending).toBe(true);
  });
});
