import express from 'express';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import { consistency } from 'pg-replica-router/express';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, startTestCluster, urlAs } from '../helpers/cluster.js';
import { Browser, listen } from '../helpers/http.js';

/** What each ORM's compat test provides: the same operations, written with that ORM. */
export interface OrmUnderTest {
  /** Builds the ORM on the router's pool (and `direct`: the same ORM on a plain pg pool to a replica). */
  open(router: Router, replicaUrl: string): Promise<void> | void;
  close(): Promise<void>;
  insert(id: number, name: string): Promise<void>;
  findName(id: number, via?: 'router' | 'direct'): Promise<string | undefined>;
  update(id: number, name: string): Promise<void>;
  remove(id: number): Promise<void>;
  /** `select inet_server_port()` through the ORM. */
  port(): Promise<number>;
  /** Inserts inside a transaction; `fail` throws inside it (rollback). Returns the port the transaction ran on. */
  transaction(id: number, name: string, fail: boolean): Promise<number>;
  /** A read-only transaction: returns the port it ran on. */
  readOnlyTransaction?(): Promise<number>;
  /** A query PostgreSQL rejects. */
  failing(): Promise<unknown>;
  /** Streams the ids of people with id ≥ from. */
  stream?(from: number): Promise<number[]>;
}

/**
 * The standard compat suite for one ORM, run twice: with the ORM used directly (the process is
 * the session) and inside Express requests (`consistency()` scopes each request).
 */
export function describeOrm(name: string, orm: OrmUnderTest): void {
  let cluster: Cluster;
  let router: Router;
  let url: string;
  let closeServer: () => Promise<void>;
  const jobs = new Map<string, () => Promise<unknown>>();

  beforeAll(async () => {
    cluster = await startTestCluster({ replicas: 2 });
    router = routerFor(cluster, { logger: false });
    await router.query('create table people (id int primary key, name text not null)');
    await orm.open(router, urlAs(cluster.replicas[0]!));
    await settle(router, cluster);
    const app = express();
    app.use(consistency(router));
    app.post('/run/:job', async (req, res) => {
      try {
        res.json({ ok: true, value: (await jobs.get(req.params.job)!()) ?? null });
      } catch (err) {
        res.json({ ok: false, code: (err as { code?: string }).code, message: (err as Error).message });
      }
    });
    ({ url, close: closeServer } = await listen(app));
  });

  afterEach(async () => {
    for (const replica of cluster.replicas) await replica.resumeReplay();
  });

  afterAll(async () => {
    await closeServer?.();
    await orm.close();
    await router?.close();
    await cluster?.stop();
  });

  const modes = {
    /** The ORM used directly; each call is its own "request" of the process session. */
    outside:
      () =>
      <T>(fn: () => Promise<T>) =>
        fn(),
    /** Each call runs inside an Express request of one browser session. */
    express: () => {
      const browser = new Browser();
      return async <T>(fn: () => Promise<T>): Promise<T> => {
        const id = String(Math.random());
        jobs.set(id, fn);
        const result = await browser.json<{ ok: boolean; value: T; code?: string; message?: string }>(`${url}/run/${id}`, {
          method: 'POST',
        });
        jobs.delete(id);
        if (!result.ok) throw Object.assign(new Error(result.message), { code: result.code });
        return result.value;
      };
    },
  };

  for (const [mode, makeRun] of Object.entries(modes)) {
    describe(`${name} (${mode === 'outside' ? 'outside any request' : 'inside Express requests'})`, () => {
      const base = mode === 'outside' ? 0 : 10_000;
      const replicaPorts = () => cluster.replicas.map((r) => r.port);
      const pauseAll = async () => {
        await settle(router, cluster);
        for (const replica of cluster.replicas) await replica.pauseReplay();
      };

      it('CRUD', async () => {
        const run = makeRun();
        await run(() => orm.insert(base + 1, 'ada'));
        expect(await run(() => orm.findName(base + 1))).toBe('ada');
        await run(() => orm.update(base + 1, 'ada lovelace'));
        expect(await run(() => orm.findName(base + 1))).toBe('ada lovelace');
        await run(() => orm.remove(base + 1));
        expect((await run(() => orm.findName(base + 1))) ?? undefined).toBeUndefined();
      });

      it('read-your-writes with every replica paused; the same read straight on a replica is stale', async () => {
        const run = makeRun();
        await pauseAll();
        await run(() => orm.insert(base + 2, 'grace'));
        expect(await run(() => orm.findName(base + 2))).toBe('grace');
        expect(await orm.findName(base + 2, 'direct')).toBeUndefined();
        await run(() => orm.update(base + 2, 'grace hopper'));
        expect(await run(() => orm.findName(base + 2))).toBe('grace hopper');
      });

      it('a read with no floor really goes to a replica', async () => {
        await settle(router, cluster);
        const port = await makeRun()(() => orm.port()); // a new session (outside: the process, caught up)
        expect(replicaPorts()).toContain(port);
        expect(nodeByPort(cluster, port)).toMatch(/^r\d$/);
      });

      it('transactions commit and roll back on the primary', async () => {
        const run = makeRun();
        expect(await run(() => orm.transaction(base + 3, 'committed', false))).toBe(cluster.primary.port);
        expect(await run(() => orm.findName(base + 3))).toBe('committed');
        await expect(run(() => orm.transaction(base + 4, 'rolled back', true))).rejects.toThrow();
        expect((await run(() => orm.findName(base + 4))) ?? undefined).toBeUndefined();
      });

      if (orm.readOnlyTransaction) {
        it('a read-only transaction may run on a replica', async () => {
          await settle(router, cluster);
          const port = await makeRun()(() => orm.readOnlyTransaction!());
          expect(replicaPorts()).toContain(port);
        });
      }

      it('an error from PostgreSQL reaches the caller unchanged', async () => {
        const run = makeRun();
        await expect(run(() => orm.failing())).rejects.toMatchObject({ code: '42P01' });
      });

      if (orm.stream) {
        it('streams', async () => {
          const run = makeRun();
          for (let i = 0; i < 5; i++) await run(() => orm.insert(base + 100 + i, `s${i}`));
          expect(await run(() => orm.stream!(base + 100))).toEqual([0, 1, 2, 3, 4].map((i) => base + 100 + i));
        });
      }
    });
  }
}
