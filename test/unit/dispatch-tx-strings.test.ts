// Issue 14, cases 8 and 14, database-free: what a multi-statement string does to a connection's
// transaction (stringEffect, and Dispatch.note through the pool and a checked-out client), and a
// read a replica refuses as a write (SQLSTATE 25006), over the fake parts.
import { describe, expect, it } from 'vitest';
import type { StringStep } from '../../lib/classifier.js';
import { stringEffect, type TransactionState } from '../../lib/transaction-effect.js';
import { RoutedPool } from '../../lib/pool.js';
import { makeScope, runInScope } from '../../lib/scopes.js';
import { Session } from '../../lib/session.js';
import { fakeEngine } from '../helpers/fake-parts.js';

const CLOSED: TransactionState = { open: false, wrote: false };
const OPEN: TransactionState = { open: true, wrote: false };
const OPEN_WROTE: TransactionState = { open: true, wrote: true };
const UNSURE: TransactionState = { open: true, wrote: true, unsure: true };

type Row = [string, StringStep[], TransactionState, boolean, { committed: boolean; open: boolean; wrote: boolean; unsure: boolean }];
const no = false;
const yes = true;

// [what, steps, before, ok, after] — on the primary
const TABLE: Row[] = [
  ['insert; commit in an open block', ['write', 'commit'], OPEN, yes, { committed: yes, open: no, wrote: no, unsure: no }],
  ['commit alone in a block that wrote', ['read', 'commit'], OPEN_WROTE, yes, { committed: yes, open: no, wrote: no, unsure: no }],
  ['begin; insert leaves the block open', ['begin', 'write'], CLOSED, yes, { committed: no, open: yes, wrote: yes, unsure: no }],
  ['insert; begin: the insert joins the block', ['write', 'begin'], CLOSED, yes, { committed: no, open: yes, wrote: yes, unsure: no }],
  ['begin; insert; commit', ['begin', 'write', 'commit'], CLOSED, yes, { committed: yes, open: no, wrote: no, unsure: no }],
  ['begin; insert; rollback', ['begin', 'write', 'rollback'], CLOSED, yes, { committed: no, open: no, wrote: no, unsure: no }],
  ['insert; rollback in an open block', ['write', 'rollback'], OPEN, yes, { committed: no, open: no, wrote: no, unsure: no }],
  ['rollback; insert: the insert autocommits', ['rollback', 'write'], OPEN_WROTE, yes, { committed: yes, open: no, wrote: no, unsure: no }],
  ['insert; insert outside a block (implicit transaction)', ['write'], CLOSED, yes, { committed: yes, open: no, wrote: no, unsure: no }],
  ['reads only', ['read'], CLOSED, yes, { committed: no, open: no, wrote: no, unsure: no }],
  [
    'commit and chain keeps a block open',
    ['write', 'commit-and-chain', 'write'],
    OPEN,
    yes,
    { committed: yes, open: yes, wrote: yes, unsure: no },
  ],
  ['rollback and chain', ['write', 'rollback-and-chain'], OPEN, yes, { committed: no, open: yes, wrote: no, unsure: no }],
  ['select; commit in an implicit block is no write', ['read', 'commit'], CLOSED, yes, { committed: no, open: no, wrote: no, unsure: no }],
  // failed part-way (or its reply lost): every outcome covered
  ['failed begin; insert; commit', ['begin', 'write', 'commit'], CLOSED, no, { committed: yes, open: yes, wrote: yes, unsure: yes }],
  ['failed insert; commit in a block', ['write', 'commit'], OPEN, no, { committed: yes, open: yes, wrote: yes, unsure: yes }],
  ['failed insert; insert outside a block', ['write'], CLOSED, no, { committed: yes, open: no, wrote: no, unsure: no }],
  ['failed select; select in a block stays in it', ['read'], OPEN, no, { committed: no, open: yes, wrote: no, unsure: no }],
  ['failed rollback; insert', ['rollback', 'write'], OPEN, no, { committed: yes, open: no, wrote: no, unsure: no }],
  // a string the parser could not read (it may be older than the server)
  ['unreadable, in a block', ['unknown'], OPEN, yes, { committed: yes, open: yes, wrote: yes, unsure: yes }],
  ['unreadable, outside one', ['unknown'], CLOSED, yes, { committed: yes, open: yes, wrote: yes, unsure: yes }],
  // after a failed string, unsure where the connection is
  ['reads while unsure stay unsure', ['read'], UNSURE, yes, { committed: no, open: yes, wrote: yes, unsure: yes }],
  ['rollback settles it', ['read', 'rollback'], UNSURE, yes, { committed: no, open: no, wrote: no, unsure: no }],
  ['commit settles it, noting what may have been written', ['commit'], UNSURE, yes, { committed: yes, open: no, wrote: no, unsure: no }],
  ['an insert while unsure may autocommit', ['write'], UNSURE, yes, { committed: yes, open: yes, wrote: yes, unsure: yes }],
];

describe('stringEffect: a multi-statement string over a transaction', () => {
  it.each(TABLE)('%s', (_what, steps, before, ok, after) => {
    expect(stringEffect(steps, before, true, ok)).toEqual(after);
  });

  it('on a replica nothing is written, whatever the string', () => {
    expect(stringEffect(['begin', 'write', 'commit'], CLOSED, false, true)).toMatchObject({ committed: false, open: false });
    expect(stringEffect(['write', 'commit'], OPEN, false, true)).toMatchObject({ committed: false, open: false });
  });

  it('does not change the state it was given', () => {
    const before = { ...OPEN_WROTE };
    stringEffect(['write', 'commit'], before, true, true);
    expect(before).toEqual(OPEN_WROTE);
  });
});

/** A pool over fake nodes with both replicas caught up, and a keyed session to run in. */
/** A fake engine's routed pool, once the router has started (the parser loaded). */
async function setup() {
  const fake = fakeEngine();
  await fake.engine.dispatch.started();
  fake.monitor.set('r1', { replayLsn: 1000n });
  fake.monitor.set('r2', { replayLsn: 1000n });
  const pool = new RoutedPool(fake.engine);
  const session = new Session('user:1');
  session.loaded = true;
  const inSession = <T>(fn: () => Promise<T>) => runInScope(makeScope(session, undefined), fn);
  const served = (name: string) => fake.engine.nodes.all.find((n) => n.name === name)!.served;
  return { ...fake, pool, session, inSession, served };
}

const INSERT = 'insert into t values (1)';

describe('Dispatch.note: multi-statement strings on a checked-out client', () => {
  it("BEGIN, then 'insert; commit': the write is noted with the string, and the transaction is over", async () => {
    const { pool, session, inSession } = await setup();
    await inSession(async () => {
      const client = await pool.connect();
      await client.query('begin');
      await client.query(`${INSERT}; commit`);
      expect(session.writePending).toBe(true);
      session.writePending = false;
      await client.query(INSERT); // autocommitted: noted at once
      expect(session.writePending).toBe(true);
      client.release();
    });
  });

  it("'begin; insert' is noted at the later COMMIT, not before", async () => {
    const { pool, session, inSession } = await setup();
    await inSession(async () => {
      const client = await pool.connect();
      await client.query(`begin; ${INSERT}`);
      expect(session.writePending).toBe(false);
      await client.query('select 1');
      expect(session.writePending).toBe(false);
      await client.query('commit');
      expect(session.writePending).toBe(true);
      client.release();
    });
  });

  it("BEGIN, then 'insert; rollback', then an insert: only the last is a write, noted at once", async () => {
    const { pool, session, inSession } = await setup();
    await inSession(async () => {
      const client = await pool.connect();
      await client.query('begin');
      await client.query(`${INSERT}; rollback`);
      expect(session.writePending).toBe(false);
      await client.query(INSERT);
      expect(session.writePending).toBe(true);
      client.release();
    });
  });

  it('a string that failed part-way: a later write counts at once and again at COMMIT', async () => {
    const { pool, primary, session, inSession } = await setup();
    await inSession(async () => {
      const client = await pool.connect();
      primary.fail = Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' });
      await expect(client.query(`begin; ${INSERT}; commit`)).rejects.toMatchObject({ code: '23505' });
      expect(session.writePending).toBe(true); // it may have committed (or only its reply was lost)
      session.writePending = false;
      await client.query(INSERT); // in an aborted block, or autocommitted: noted either way
      expect(session.writePending).toBe(true);
      session.writePending = false;
      await client.query('commit');
      expect(session.writePending).toBe(true);
      session.writePending = false;
      await client.query(INSERT); // the COMMIT settled it: outside a block now
      expect(session.writePending).toBe(true);
      client.release();
    });
  });

  it('a string on the primary with reads only is a read there, not a write', async () => {
    const { pool, session, inSession } = await setup();
    await inSession(() => pool.query('select 1; select 2'));
    expect(session.writePending).toBe(false);
    expect(session.uncovered).toBe('primary');
  });
});

describe('Dispatch.note: multi-statement strings through pool.query', () => {
  it("'begin; insert; commit' is noted; 'begin; insert; rollback' is not; 'begin; insert' left open is (nobody can commit it through the router)", async () => {
    const { pool, session, inSession } = await setup();
    await inSession(() => pool.query(`begin; ${INSERT}; rollback`));
    expect(session.writePending).toBe(false);
    await inSession(() => pool.query(`begin; ${INSERT}; commit`));
    expect(session.writePending).toBe(true);
    session.writePending = false;
    await inSession(() => pool.query(`begin; ${INSERT}`));
    expect(session.writePending).toBe(true);
  });
});

const refusal = () => Object.assign(new Error('cannot execute INSERT in a read-only transaction'), { code: '25006' });

describe('a read a replica refuses as a write (25006)', () => {
  it('runs once more on the primary, counts as a write, and goes to the primary first next time', async () => {
    const { pool, pools, monitor, session, inSession, served } = await setup();
    monitor.set('r2', { status: 'down' });
    pools.get('r1')!.fail = refusal();
    const result = await inSession(() => pool.query('select log_it(1)'));
    expect(result.rows[0]!.node).toBe('primary');
    expect(session.writePending).toBe(true);
    expect([served('r1'), served('primary')]).toEqual([1, 1]);
    expect(monitor.state('r1')!.status).toBe('up'); // a refusal is not an outage
    await inSession(() => pool.query('select log_it(1)'));
    expect([served('r1'), served('primary')]).toEqual([1, 2]);
  });

  it('a checked-out client outside a transaction moves to the primary for it', async () => {
    const { pool, pools, monitor, session, inSession } = await setup();
    monitor.set('r2', { status: 'down' });
    await inSession(async () => {
      const client = await pool.connect();
      await client.query('select 1');
      expect(client.node).toBe('r1');
      pools.get('r1')!.fail = refusal();
      const result = await client.query('select log_it(2)');
      expect(result.rows[0]!.node).toBe('primary');
      expect(client.node).toBe('primary');
      expect(session.writePending).toBe(true);
      client.release();
    });
  });

  it('inside a transaction the error goes to the caller, and the client stays on the replica', async () => {
    const { pool, pools, monitor, session, inSession, served } = await setup();
    monitor.set('r2', { status: 'down' });
    await inSession(async () => {
      const client = await pool.connect();
      await client.query('begin read only');
      expect(client.node).toBe('r1');
      pools.get('r1')!.fail = refusal();
      await expect(client.query('select log_it(3)')).rejects.toMatchObject({ code: '25006' });
      expect(client.node).toBe('r1');
      await client.query('rollback');
      client.release();
    });
    expect(served('primary')).toBe(0);
    expect(session.writePending).toBe(false);
  });

  it('a refusal on the primary is not retried', async () => {
    const { pool, primary, session, inSession, served } = await setup();
    primary.fail = refusal();
    await expect(inSession(() => pool.query('update t set x = 1'))).rejects.toMatchObject({ code: '25006' });
    expect(served('primary')).toBe(1);
    expect(session.writePending).toBe(true); // sent: a failed write is noted (as any)
  });
});
