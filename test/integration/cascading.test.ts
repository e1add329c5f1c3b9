// Cascading replicas: r2 streams from r1, not from the primary (startCluster's `upstreams`).
// Positions stay comparable along the chain (one WAL history), so the router's rules hold as they
// are: r2 can be ahead of r1 (r1 forwards what it received, replayed or not) or stuck behind it
// (r1 down), and after r1 is promoted r2 follows it onto the new timeline.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, type Router } from 'pg-replica-router';
import type { Cluster, ReplicaHandle } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { nodeByPort, routerFor, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

let cluster: Cluster;
let r1: ReplicaHandle;
let r2: ReplicaHandle;
let router: Router;

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2, upstreams: { r2: 'r1' } });
  [r1, r2] = cluster.replicas as [ReplicaHandle, ReplicaHandle];
  await cluster.primary.query('create table notes (id serial primary key, author text)');
  await cluster.waitForReplicas();
  router = routerFor(cluster);
  await settle(router, cluster);
});

afterAll(async () => {
  await router?.close();
  await cluster?.stop();
});

async function naiveCount(node: ReplicaHandle, author: string): Promise<number> {
  const pool = new pg.Pool({ connectionString: urlAs(node), max: 1 });
  try {
    return (await pool.query('select count(*)::int as n from notes where author = $1', [author])).rows[0].n;
  } finally {
    await pool.end();
  }
}

const sessionRead = (r: Router, session: string, author: string) =>
  r.withSession(session, () =>
    r
      .query<{ n: number; port: number }>('select count(*)::int as n, inet_server_port() as port from notes where author = $1', [author])
      .then(({ rows }) => ({ n: rows[0]!.n, node: nodeByPort(cluster, rows[0]!.port) })),
  );

const write = (r: Router, session: string, author: string) =>
  r.withSession(session, () => r.query('insert into notes (author) values ($1)', [author]));

describe('a cascading replica (r2 streams from r1)', () => {
  it('streams from r1, and is used like any replica once it has replayed the floor', async () => {
    const [receiver] = await r2.query<{ sender_port: number }>('select sender_port from pg_stat_wal_receiver');
    expect(receiver!.sender_port).toBe(r1.port);
    await write(router, 'ann', 'ann');
    await expect
      .poll(() => sessionRead(router, 'ann', 'ann'), { timeout: 5000, interval: 100 })
      .toEqual({ n: 1, node: expect.stringMatching(/^r[12]$/) });
  });

  it('with r1 paused, r2 is ahead of it (r1 forwards what it received): the session reads on r2, never on r1; a plain pool on r1 is stale', async () => {
    await r1.pauseReplay();
    try {
      await write(router, 'bob', 'bob');
      expect(await naiveCount(r1, 'bob')).toBe(0);
      await r2.waitForReplay();
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const read = await sessionRead(router, 'bob', 'bob');
        expect(read.n).toBe(1);
        seen.add(read.node);
      }
      expect(seen.has('r1')).toBe(false);
      await expect.poll(() => sessionRead(router, 'bob', 'bob'), { timeout: 5000, interval: 100 }).toEqual({ n: 1, node: 'r2' });
    } finally {
      await r1.resumeReplay();
    }
  });

  it('with r1 stopped, r2 receives nothing: the session reads its write on the primary; a plain pool on r2 is stale; r2 is used again once r1 is back', async () => {
    await r1.stop();
    try {
      await write(router, 'cid', 'cid');
      expect(await naiveCount(r2, 'cid')).toBe(0);
      for (let i = 0; i < 5; i++) expect(await sessionRead(router, 'cid', 'cid')).toEqual({ n: 1, node: 'primary' });
    } finally {
      await r1.start();
    }
    await cluster.waitForReplicas();
    await expect
      .poll(() => sessionRead(router, 'cid', 'cid'), { timeout: 10_000, interval: 100 })
      .toEqual({ n: 1, node: expect.stringMatching(/^r[12]$/) });
  });

  it('after r1 is promoted, r2 follows it onto the new timeline and serves a router pointed at r1', async () => {
    await cluster.primary.stop();
    await r1.promote();
    const after = createRouter({
      primary: { connectionString: urlAs(r1) },
      replicas: [{ name: 'r2', connectionString: urlAs(r2) }],
      monitor: { intervalMs: 100 },
      logger: false,
    });
    try {
      await after.query('select 1');
      await engineOf(after)!.monitor.ready;
      // r2 follows the switch at once, but the application role reads a replica's timeline from its
      // control file, which moves at its next restartpoint (see docs/consistency-model.md,
      // "Privileges"): a CHECKPOINT on r2 makes one now.
      await expect
        .poll(async () => (await r2.query<{ tli: number }>('select received_tli as tli from pg_stat_wal_receiver'))[0]?.tli, {
          timeout: 20_000,
        })
        .toBe(2);
      await r2.query('checkpoint');
      await expect.poll(() => after.topology().nodes.find((n) => n.name === 'r2')?.status, { timeout: 20_000, interval: 100 }).toBe('up');
      await write(after, 'dan', 'dan');
      expect(await sessionRead(after, 'dan', 'dan')).toEqual({ n: 1, node: expect.stringMatching(/^r[12]$/) }); // r1 is the primary now
      await expect.poll(() => sessionRead(after, 'dan', 'dan'), { timeout: 10_000, interval: 100 }).toEqual({ n: 1, node: 'r2' });
    } finally {
      await after.close();
    }
  });
});
