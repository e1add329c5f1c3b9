// Which PostgreSQL the suite runs on: the major of the binaries startCluster found (PG_BIN in the
// version matrix, test/versions/run.ts), on every node, and the router's routing on it as the
// application role. Guards the matrix against testing the machine's own PostgreSQL by mistake.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPostgresBinaries, type Cluster } from 'pg-replica-router/testing';
import { routerFor, startTestCluster } from '../helpers/cluster.js';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
});

afterAll(async () => {
  await cluster?.stop();
});

describe('the PostgreSQL under test', () => {
  it('is the major of the binaries found (and the one the version matrix names), on the primary and the replica', async () => {
    const { binDir } = findPostgresBinaries(process.env.PG_BIN);
    const reported = execFileSync(join(binDir, 'postgres'), ['--version'], { encoding: 'utf8' });
    const major = Number(/\(PostgreSQL\) (\d+)/.exec(reported)?.[1]);
    if (process.env.PGRR_PG_MAJOR) expect(major).toBe(Number(process.env.PGRR_PG_MAJOR));
    for (const node of [cluster.primary, ...cluster.replicas]) {
      const [row] = await node.query<{ v: string }>("select current_setting('server_version_num') as v");
      expect(Math.floor(Number(row!.v) / 10000)).toBe(major);
    }
    expect(major).toBeGreaterThanOrEqual(13);
    expect(major).toBeLessThanOrEqual(18);
  });

  it('routes a read to the caught-up replica as the application role', async () => {
    await cluster.primary.query('create table version_probe (id int primary key)');
    await cluster.waitForReplicas();
    const router = routerFor(cluster);
    try {
      await router.query('select 1');
      await expect.poll(() => router.topology().nodes.find((n) => n.role === 'replica')?.status, { timeout: 10_000 }).toBe('up');
      const { rows } = await router.query<{ port: number }>('select inet_server_port() as port, count(*) from version_probe');
      expect(rows[0]!.port).toBe(cluster.replicas[0]!.port);
    } finally {
      await router.close();
    }
  });
});
