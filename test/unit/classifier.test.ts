import { beforeAll, describe, expect, it } from 'vitest';
import { Classifier, type StatementKind, type StringStep } from '../../lib/classifier.js';

const classifier = new Classifier({ writeFunctions: ['audit_touch', 'app_*'] });
beforeAll(() => classifier.ready);

// [sql, kind, detail?]
const TABLE: Array<[string, StatementKind, string?]> = [
  // plain reads
  ['select 1', 'read', 'select'],
  ['SELECT * FROM users WHERE id = $1', 'read'],
  ['select id, name from users order by id limit 10 offset 5', 'read'],
  ['select count(*) from orders group by status having count(*) > 1', 'read'],
  ['select * from a join b using (id) left join c on c.id = a.id', 'read'],
  ['select * from users where id in (select user_id from follows)', 'read'],
  ['select exists(select 1 from users where email = $1)', 'read'],
  ['select now(), current_user, version()', 'read'],
  ['select * from users union all select * from archived_users', 'read'],
  ['select distinct on (user_id) * from posts order by user_id, created_at desc', 'read'],
  ['select row_number() over (partition by a order by b) from t', 'read'],
  ["with recent as (select * from posts where created_at > now() - interval '1 day') select * from recent", 'read'],
  ['with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select * from r', 'read'],
  ['(select 1) union (select 2)', 'read'],
  ['  \n select 1', 'read'],
  ['-- a comment\nselect 1', 'read'],
  ['/* leading comment */ select 1', 'read'],
  ['select 1;', 'read'],
  ['select $1::int + $2::int', 'read'],
  ["select jsonb_build_object('a', 1)", 'read'],
  ['select * from generate_series(1, 10)', 'read'],
  ['select pg_last_wal_replay_lsn()', 'read'],
  ['select lower(name) from users', 'read'],
  ['select * from users tablesample system (10)', 'read'],
  ['select * from only parent_table', 'read'],
  ['select "for update" from t', 'read'],
  ["select 'nextval(1)' as text", 'read'],
  ['VALUES (1, 2), (3, 4)', 'read'],
  ['values (1)', 'read'],
  ['TABLE users', 'read'],
  ['SHOW search_path', 'read', 'show'],
  ['show all', 'read', 'show'],
  ['EXPLAIN select * from users', 'read', 'explain'],
  ['explain (format json) select 1', 'read', 'explain'],
  ['explain analyze select * from users', 'read', 'explain'],
  // locking reads
  ['select * from users where id = 1 for update', 'write', 'locking'],
  ['select * from users for share', 'write', 'locking'],
  ['select * from users for no key update', 'write', 'locking'],
  ['select * from users for key share skip locked', 'write', 'locking'],
  ['select * from users for update nowait', 'write', 'locking'],
  ['select * from (select * from jobs for update skip locked limit 1) j', 'write', 'locking'],
  // data-modifying CTEs
  ['with d as (delete from jobs where id = 1 returning *) select * from d', 'write', 'data-modifying-cte'],
  ['with i as (insert into t values (1) returning id) select id from i', 'write', 'data-modifying-cte'],
  ['with u as (update t set a = 1 returning *) select count(*) from u', 'write', 'data-modifying-cte'],
  ['with a as (select 1), b as (delete from t returning *) select * from a', 'write', 'data-modifying-cte'],
  // side-effect functions
  ["select nextval('users_id_seq')", 'write', 'function:nextval'],
  ["SELECT NEXTVAL('s')", 'write', 'function:nextval'],
  ["select setval('s', 10)", 'write', 'function:setval'],
  ["select pg_catalog.nextval('s')", 'write', 'function:nextval'],
  ['select pg_advisory_lock(42)', 'write', 'function:pg_advisory_lock'],
  ['select pg_try_advisory_lock(42)', 'write', 'function:pg_try_advisory_lock'],
  ['select pg_advisory_xact_lock(1)', 'write', 'function:pg_advisory_xact_lock'],
  ['select pg_advisory_unlock_all()', 'write', 'function:pg_advisory_unlock_all'],
  ["select set_config('app.user', '42', false)", 'write', 'function:set_config'],
  ['select txid_current()', 'write', 'function:txid_current'],
  ['select pg_current_xact_id()', 'write', 'function:pg_current_xact_id'],
  ["select pg_notify('ch', 'payload')", 'write', 'function:pg_notify'],
  ["select lo_import('/tmp/x')", 'write', 'function:lo_import'],
  ['select lo_unlink(1234)', 'write', 'function:lo_unlink'],
  ["select * from users where id = (select nextval('s'))", 'write', 'function:nextval'],
  ['select audit_touch(1)', 'write', 'function:audit_touch'],
  ['select app_register(1)', 'write', 'function:app_register'],
  ['select pg_terminate_backend(123)', 'write', 'backend-signal'],
  // signals by pid and pid reveals (issue 14, case 12): the router works out which node's backend
  ['select pg_cancel_backend($1)', 'write', 'backend-signal'],
  ['SELECT pg_cancel_backend($1);', 'write', 'backend-signal'],
  ['select pg_catalog.pg_cancel_backend($1::int) as cancelled', 'write', 'backend-signal'],
  ['select pg_cancel_backend(pid) from pg_stat_activity where state = $1', 'write', 'function:pg_cancel_backend'],
  ['select pg_terminate_backend(123, 5000)', 'write', 'function:pg_terminate_backend'],
  ['select pg_cancel_backend(pg_backend_pid())', 'write', 'function:pg_cancel_backend'],
  ['select myschema.pg_cancel_backend(1)', 'write', 'function:pg_cancel_backend'],
  ['select pg_backend_pid() as pid', 'read', 'backend-pid'],
  ['select pg_backend_pid(), now()', 'read', 'backend-pid'],
  ["select pg_backend_pid(), nextval('s')", 'write', 'function:nextval'],
  ["explain analyze select nextval('s')", 'write', 'function:nextval'],
  // SELECT INTO
  ['select * into new_table from users', 'write', 'select-into'],
  ['select 1 as x into temp t', 'write', 'select-into'],
  // writes and DDL
  ['insert into users (name) values ($1)', 'write', 'insert'],
  ['INSERT INTO t SELECT * FROM s', 'write'],
  ['update users set name = $1 where id = $2', 'write'],
  ['delete from users where id = 1', 'write'],
  ['merge into t using s on t.id = s.id when matched then update set a = s.a', 'write'],
  ['insert into t values (1) on conflict do nothing', 'write'],
  ['create table t (id int)', 'write'],
  ['create index concurrently i on t (a)', 'write'],
  ['alter table t add column b int', 'write'],
  ['drop table t', 'write'],
  ['truncate t', 'write'],
  ['vacuum t', 'write'],
  ['analyze t', 'write'],
  ['refresh materialized view mv', 'write'],
  ['grant select on t to public', 'write'],
  ['call my_procedure()', 'write'],
  ['do $$ begin perform 1; end $$', 'write'],
  ['lock table t in exclusive mode', 'write'],
  ['create temp table x as select 1', 'write'],
  ['prepare p as select 1', 'write'],
  ['execute p', 'write'],
  ['deallocate p', 'write'],
  ['declare c cursor with hold for select 1', 'write'],
  // EXPLAIN ANALYZE of a write (and EXPLAIN of one)
  ['explain analyze insert into t values (1)', 'write', 'explain-write'],
  ['explain (analyze, buffers) delete from t', 'write', 'explain-write'],
  ['explain update t set a = 1', 'write', 'explain-write'],
  // session state
  ['SET search_path TO app', 'write', 'set'],
  ['set local statement_timeout = 1000', 'write', 'set'],
  ["set time zone 'UTC'", 'write', 'set'],
  ['reset all', 'write', 'reset'],
  ['discard all', 'write'],
  ['set transaction isolation level serializable', 'write', 'set'],
  ['set session characteristics as transaction read only', 'write', 'set'],
  // LISTEN / NOTIFY / COPY
  ['listen events', 'write', 'listen'],
  ['unlisten *', 'write'],
  ["notify events, 'hi'", 'write', 'notify'],
  ['copy t to stdout', 'write', 'copy'],
  ['copy t from stdin', 'write', 'copy'],
  ['copy (select * from t) to stdout', 'write', 'copy'],
  // multi-statement and junk
  ['select 1; select 2', 'write', 'multi-statement'],
  ['select 1; delete from t', 'write', 'multi-statement'],
  ['begin; select 1; commit', 'write', 'multi-statement'],
  ['selec 1', 'write'],
  ['select from where', 'write', 'unparsable'],
  ['select (1', 'write', 'unparsable'],
  ['', 'write'],
  [';', 'write'],
  ['-- only a comment', 'write', 'empty'],
  // transactions
  ['BEGIN', 'begin', 'begin'],
  ['begin transaction', 'begin'],
  ['begin isolation level repeatable read', 'begin'],
  ['begin read write', 'begin'],
  ['start transaction', 'begin'],
  ['BEGIN READ ONLY', 'begin-read-only'],
  ['begin transaction read only', 'begin-read-only'],
  ['START TRANSACTION READ ONLY', 'begin-read-only'],
  ['start transaction isolation level repeatable read, read only', 'begin-read-only'],
  ['start transaction isolation level serializable, read only, deferrable', 'begin', 'begin-serializable-read-only'],
  ['begin isolation level serializable read only', 'begin', 'begin-serializable-read-only'],
  ['commit', 'commit'],
  ['END', 'commit'],
  ['commit and chain', 'commit', 'commit-and-chain'],
  ["prepare transaction 'tx1'", 'commit', 'prepare-transaction'],
  ['rollback', 'rollback'],
  ['rollback and chain', 'rollback', 'rollback-and-chain'],
  ['abort', 'rollback'],
  ['savepoint s1', 'transaction', 'savepoint'],
  ['release savepoint s1', 'transaction', 'release'],
  ['rollback to savepoint s1', 'transaction', 'rollback_to'],
  ["commit prepared 'tx1'", 'write', 'commit_prepared'],
  ["rollback prepared 'tx1'", 'write', 'rollback_prepared'],
  // the hint comment
  ['/* pg-replica-router: primary */ select 1', 'write', 'hint'],
  ['select * from users /* pg-replica-router:primary */', 'write', 'hint'],
  ['/*PG-REPLICA-ROUTER: PRIMARY*/ select 1', 'write', 'hint'],
  ['/* pg-replica-router: replica */ select 1', 'read'],
];

// Multi-statement strings: [sql, steps] (undefined: judged as one write, no steps needed).
const STRINGS: Array<[string, StringStep[] | undefined]> = [
  ['begin; insert into t values (1); commit', ['begin', 'write', 'commit']],
  ['insert into t values (1); commit', ['write', 'commit']],
  ['BEGIN; INSERT INTO t VALUES (1)', ['begin', 'write']],
  ['insert into t values (1); rollback', ['write', 'rollback']],
  ['select 1; select 2', ['read']],
  ['select 1; delete from t; update t set a = 1; select 2', ['read', 'write', 'read']],
  ['start transaction read only; select 1; end', ['begin', 'read', 'commit']],
  ['begin; savepoint a; insert into t values (1); rollback to savepoint a; release a; commit', ['begin', 'write', 'commit']],
  [
    'insert into t values (1); commit and chain; insert into t values (2); rollback and chain',
    ['write', 'commit-and-chain', 'write', 'rollback-and-chain'],
  ],
  ["begin; insert into t values (1); prepare transaction 'x'", ['begin', 'write', 'commit']],
  ['insert into t values (1); abort', ['write', 'rollback']],
  ["select nextval('s'); commit", ['write', 'commit']],
  ['/* pg-replica-router: primary */ select 1; select 2', ['write']],
  ['insert into t values (1);\n-- done\n', undefined],
  ["insert into t values ('a;b')", undefined],
  ['insert into t values (1); insert into t values (2)', undefined],
  ["insert into t values ('begin'); select case when true then 1 end", ['write', 'read']],
  // unreadable to the parser, and it may control a transaction: anything may have happened
  ['insert into t values (1); commit; selec 2', ['unknown']],
  ['insert into t values (1); selec 2', undefined],
];

describe('multi-statement strings: their transaction steps', () => {
  it.each(STRINGS)('%s → %j', (sql, steps) => {
    const result = classifier.classifySync(sql);
    expect(result.kind).toBe('write');
    expect(result.steps).toEqual(steps);
    if (steps) expect(Object.isFrozen(result.steps)).toBe(true);
  });

  it('a single statement has no steps, even with a trailing semicolon', () => {
    expect(classifier.classifySync('begin;').steps).toBeUndefined();
    expect(classifier.classifySync('commit ; ;').kind).toBe('commit');
    expect(classifier.classifySync('select 1;;').kind).toBe('read');
  });

  it('a text a replica refused as a write is one from then on (cached)', () => {
    const sql = 'select refusal_test_fn(1)';
    expect(classifier.classifySync(sql).kind).toBe('read');
    expect(classifier.refusedByReplica(sql)).toMatchObject({ kind: 'write', detail: 'refused-by-replica' });
    expect(classifier.classifySync(sql)).toMatchObject({ kind: 'write', detail: 'refused-by-replica' });
  });

  it('does not backtrack on long runs of semicolons and blanks', () => {
    const started = performance.now();
    expect(classifier.classifySync(`insert into t values (1)${'; '.repeat(50_000)}`).kind).toBe('write');
    expect(classifier.classifySync(`select 1${';'.repeat(50_000)}`).kind).toBe('read');
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});

describe('statement classification', () => {
  it('has a table of at least 80 statements', () => {
    expect(TABLE.length).toBeGreaterThanOrEqual(80);
  });

  it.each(TABLE)('%s → %s', (sql, kind, detail) => {
    const result = classifier.classifySync(sql);
    expect(result.kind).toBe(kind);
    if (detail) expect(result.detail).toBe(detail);
  });

  it('caches by SQL text (the same frozen object comes back)', async () => {
    const first = await classifier.classify('select * from cache_test where id = $1');
    expect(classifier.classifySync('select * from cache_test where id = $1')).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });

  it('sends non-text to the primary', () => {
    expect(classifier.classifySync(undefined as unknown as string).kind).toBe('write');
  });

  it('does not backtrack catastrophically on long whitespace', () => {
    const started = performance.now();
    classifier.classifySync(`${' '.repeat(50_000)}x`);
    expect(classifier.classifySync(`${' '.repeat(50_000)}select 1`).kind).toBe('read');
    // Not a timing assertion of speed, only that it finishes (a catastrophic regex would hang).
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});

describe('backend signals', () => {
  it('carries the function, the pid (literal or parameter) and the result column', () => {
    expect(classifier.classifySync('select pg_cancel_backend(4242)').signal).toEqual({
      fn: 'pg_cancel_backend',
      pid: 4242,
      column: 'pg_cancel_backend',
    });
    expect(classifier.classifySync('select pg_terminate_backend($2::integer) as "killed"').signal).toEqual({
      fn: 'pg_terminate_backend',
      pid: { param: 2 },
      column: 'killed',
    });
    expect(classifier.classifySync('select pg_cancel_backend(0)').signal?.pid).toBe(0);
    expect(classifier.classifySync('select pg_cancel_backend(pid) from pg_stat_activity').signal).toBeUndefined();
  });

  it('is only a step (a write) inside a multi-statement string', () => {
    const several = classifier.classifySync('select pg_cancel_backend(1); select 1');
    expect(several.signal).toBeUndefined();
    expect(several.steps).toEqual(['write', 'read']);
  });
});
