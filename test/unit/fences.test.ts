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
