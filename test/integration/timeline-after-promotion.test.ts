// Issue 14, case 1: the timeline of a replica that followed a promotion, as an application role.
// pg_stat_wal_receiver.received_tli (the timeline being received) reads as NULL without
// pg_read_all_stats; what any role can read is the control file: pg_control_checkpoint() (the last
// restartpoint's timeline) and pg_control_recovery().min_recovery_end_timeline (the replay
// timeline when the replica last wrote a buffer). Both are lower bounds of the timeline it
// replays, so the monitor takes their maximum and keeps the replica out of rotation until it
// reaches the primary's timeline.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRouter, type Router } from 'pg-replica-router';
import type { Cluster, ReplicaHandle } from 'pg-replica-router/testing';
import { startTestCluster, urlAs, type ConnectAs } from '../helpers/cluster.js';

let cluster: Cluster;
let r1: ReplicaHandle;
let r2: ReplicaHandle;
const routers: Router[] = [];

beforeEach(async () => {
  cluster = await startTestCluster({ replicas: 2 });
  [r1, r2] = cluster.replicas as [ReplicaHandle, ReplicaHandle];
  await cluster.primary.query("create table t (id int, pad text default repeat('x', 200))");
  await cluster.primary.query('insert into t (id) select generate_series(1, 1000)');
  await cluster.waitForReplicas();
  // Nothing more is written on timeline 1, so r1 never passes the point where r2's history forks.
  await cluster.primary.stop();
  await r2.promote();
  await r2.query("select pg_create_physical_replication_slot('r1', true)");
});

afterEach(async () => {
  for (const router of routers.splice(0)) await router.close();
  await cluster?.stop();
});

/** A router whose primary is the promoted r2, with r1 as its replica, connected `as`. */
function routerAfterFailover(as: ConnectAs): Router {
  const router = createRouter({
    primary: { connectionString: urlAs(r2, as) },
    replicas: [{ name: 'r1', connectionString: urlAs(r1, as) }],
    monitor: { intervalMs: 100 },
    logger: false,
  });
  routers.push(router);
  return router;
}

const statusOf = (router: Router) => router.topology().nodes.find((n) => n.name === 'r1')?.status;

/** Resolves with the ms until r1 is `status` in `router` (polled every 20 ms), or undefined after `timeoutMs`. */
async function msUntil(router: Router, status: string, timeoutMs: number, meanwhile?: () => Promise<unknown>): Promise<number | undefined> {
  const began = performance.now();
  while (performance.now() - began < timeoutMs) {
    if (statusOf(router) === status) return Math.round(performance.now() - began);
    await (meanwhile?.() ?? new Promise((resolve) => setTimeout(resolve, 20)));
  }
  return undefined;
}

/** r1's control-file timelines, the lower bounds an application role can read. */
async function controlTimelines(): Promise<{ checkpoint: number; minRecovery: number }> {
  const [row] = await r1.query<{ checkpoint: number; min_recovery: number }>(
    'select (select timeline_id from pg_control_checkpoint()) as checkpoint, (select min_recovery_end_timeline from pg_control_recovery()) as min_recovery',
  );
  return { checkpoint: row!.checkpoint, minRecovery: row!.min_recovery };
}

/** Points r1 at the promoted r2 (recovery_target_timeline is 'latest': it follows the new timeline). */
async function repointR1(): Promise<void> {
  await r1.query(`alter system set primary_conninfo = 'host=${r2.host} port=${r2.port} user=postgres application_name=r1'`);
  await r1.query('select pg_reload_conf()');
}

describe('a replica that followed a promotion', () => {
  it('comes back at once for a role that reads pg_stat_wal_receiver; for an application role once its control file reaches the new timeline (a buffer written under write load), never before', async () => {
    const app = routerAfterFailover('app');
    const superuser = routerAfterFailover('superuser'); // measures what pg_read_all_stats buys: received_tli
    // Before the move r1 is on timeline 1, the promoted primary on 2: out of rotation for both.
    expect(await msUntil(app, 'other-history', 10_000)).toBeDefined();
    expect(await msUntil(superuser, 'other-history', 10_000)).toBeDefined();

    await repointR1();
    const superuserMs = await msUntil(superuser, 'up', 30_000);
    expect(superuserMs, 'superuser: r1 back in rotation from received_tli').toBeDefined();

    // Idle: the control file still says timeline 1, and the application role's router keeps r1 out
    // (it cannot tell "followed the promotion" from "still on the old history").
    const idle = await msUntil(app, 'up', 3000);
    const bounds = await controlTimelines();
    if (bounds.checkpoint < 2 && bounds.minRecovery < 2) expect(idle, 'no lower bound at 2 yet: out of rotation').toBeUndefined();

    // Under write load the replica writes out buffers, which records the replay timeline as the
    // minimum recovery point's, long before its next restartpoint (checkpoint_timeout, or
    // max_wal_size of WAL).
    let batches = 0;
    const loadStart = performance.now();
    let now = bounds;
    while (now.minRecovery < 2 && now.checkpoint < 2 && performance.now() - loadStart < 90_000) {
      batches++;
      await r2.query('insert into t (id) select generate_series(1, 20000)');
      now = await controlTimelines();
    }
    const loadMs = Math.round(performance.now() - loadStart);
    expect(now, 'the minimum recovery point reached timeline 2 before any restartpoint').toEqual({ checkpoint: 1, minRecovery: 2 });
    // Now, with the last restartpoint still on timeline 1, the application role's router has r1 back.
    const appMs = await msUntil(app, 'up', 15_000);
    console.log(JSON.stringify({ superuserMs, appIdleMs: idle ?? '>3000', loadMs, batches, appAfterLoadMs: appMs }));
    expect(appMs, 'application role: r1 back in rotation from min_recovery_end_timeline').toBeDefined();
    expect((await controlTimelines()).checkpoint, 'no restartpoint meanwhile').toBe(1);
  });

  it('an application role sees it back right after the replica makes a restartpoint (CHECKPOINT on it, or checkpoint_timeout)', async () => {
    const app = routerAfterFailover('app');
    await repointR1();
    // A checkpoint on timeline 2 that r1 has replayed: a restartpoint can only be made at one.
    await r2.query('checkpoint');
    await r1.waitForReplay(await r2.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn').then((rows) => rows[0]!.lsn));
    const bounds = await controlTimelines();
    if (bounds.checkpoint < 2 && bounds.minRecovery < 2) expect(statusOf(app)).not.toBe('up');
    const began = performance.now();
    await r1.query('checkpoint'); // superuser or pg_checkpoint (PostgreSQL 15+): a restartpoint now
    const appMs = await msUntil(app, 'up', 10_000);
    console.log(JSON.stringify({ appAfterRestartpointMs: Math.round(performance.now() - began) }));
    expect(appMs).toBeDefined();
    expect((await controlTimelines()).checkpoint).toBe(2);
  });
});
