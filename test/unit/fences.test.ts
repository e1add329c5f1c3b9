import { describe, expect, it } from 'vitest';
import { Fences } from '../../lib/fences.js';
import { Session } from '../../lib/session.js';

// Fences (lib/fences.ts) without a database: a write failing while a fence for another backend
// runs is fenced too before its error returns (found by review: it joined the running fence,
// which did not list it, and its error returned with its backend still alive).
describe('fences: a second failure during a running fence', () => {
  it('after() of pid 2 returns only once pid 2 is fenced too', async () => {
    const alive = new Set<number>([1, 2]);
    const terminated: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const client = {
      async query(cfg: { values: [number[], number[]] }) {
        const [pids] = cfg.values;
        const rows = pids.filter((p) => alive.has(p)).map((pid) => ({ pid, signalled: true }));
        for (const p of pids) if (alive.delete(p)) terminated.push(p);
        return { rows };
      },
      release() {},
    };
    const pool = {
      async connect() {
        await gate;
        return client;
      },
    };
    const fences = new Fences({ pool } as never, 1000);
    fences.pooled = () => false; // the monitor saw the connections' pids are their backends'
    const err1 = Object.assign(new Error('Connection terminated unexpectedly'), {});
    const err2 = Object.assign(new Error('Connection terminated unexpectedly'), {});
    const { markBackend } = await import('../../lib/pg-args.js');
    markBackend(err1, { processID: 1 });
    markBackend(err2, { processID: 2 });
    const p1 = fences.after(err1, new Session(undefined))!.catch(() => 'e1');
    const p2 = fences.after(err2, new Session(undefined))!.catch(() => 'e2');
    release();
    expect(await p1).toBe('e1');
    expect(await p2).toBe('e2');
    expect(terminated).toEqual([1, 2]);
    expect(alive.has(2)).toBe(false);
    expect(fences.pending).toBe(false);
  });
});

// Behind a pooler (PgBouncer: its process ids name no backend) a fence ends nothing: it waits
// until no transaction of the router's role that was open before the failure is left.
describe('fences behind a pooler', () => {
  it('wait for the transactions open before the failure to end, terminate none, and send no pid', async () => {
    const sql: string[] = [];
    let open = 3; // polls that still list an old transaction
    const client = {
      async query(cfg: { text: string; values: unknown[] }) {
        sql.push(cfg.text);
        expect(cfg.values).toHaveLength(1); // an age, no pid
        return { rows: open-- > 0 ? [{ pid: 4242 }] : [] };
      },
      release() {},
    };
    const fences = new Fences({ pool: { connect: async () => client } } as never, 2000);
    for (const pooled of [true, undefined]) {
      fences.pooled = () => pooled; // undefined: not polled yet, assumed pooled
      open = 3;
      sql.length = 0;
      const err = new Error('Connection terminated unexpectedly');
      const { markBackend } = await import('../../lib/pg-args.js');
      markBackend(err, { processID: 2114350206 }); // PgBouncer's key, no backend's pid
      const session = new Session(undefined);
      const outcome = await fences.after(err, session)!.catch((e: unknown) => e);
      expect(outcome).toBe(err);
      expect(session.fenced).toBe(true);
      expect(sql.length).toBe(4); // listed until none was left
      expect(sql.every((text) => !text.includes('pg_terminate_backend') && text.includes('xact_start'))).toBe(true);
      expect(fences.pending).toBe(false);
      expect(fences.clearedAt).toBeGreaterThan(0);
    }
  });
});
