import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from 'pg-replica-router/testing';
import type { DebugDecision } from 'pg-replica-router';
import { cachedAtLeast, routerFor, startTestCluster, urlAs } from '../helpers/cluster.js';

// The opt-in debug log: why each read went where it did, without any tracing set up.

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  await cluster.primary.query('create table debug_log_notes (id int); grant select, insert on debug_log_notes to app');
  await cluster.waitForReplicas();
}, 120_000);

afterAll(() => cluster?.stop());

describe('the debug log of routing decisions', () => {
  it('a function sink gets each decision: a write, a read-back while the replica lags (primary, and why), a read once caught up', async () => {
    const decisions: DebugDecision[] = [];
    const router = routerFor(cluster, { debug: (d) => decisions.push(d) });
    try {
      await router.topology(); // nothing routed yet
      await cachedAtLeast(router, 'r1', await cluster.replicas[0]!.replayLsn()); // r1 polled: in rotation
      await cluster.replicas[0]!.pauseReplay();
      await router.withSession('u1', async () => {
        await router.query('insert into debug_log_notes values (1)');
      });
      await router.withSession('u1', () => router.query('select count(*) from debug_log_notes'));
      await cluster.replicas[0]!.resumeReplay();
      await cluster.waitForReplicas();
      await new Promise((resolve) => setTimeout(resolve, 300)); // a monitor poll or two
      await router.withSession('u1', () => router.query('select count(*) from debug_log_notes'));
      expect(decisions.map((d) => [d.node, d.reason, d.statement])).toEqual([
        ['primary', 'not-a-read', 'write'],
        ['r1', 'checked-in-flight', 'read'], // r1 read with its check: behind, its answer dropped
        ['primary', 'replica-behind', 'read'],
        ['r1', 'caught-up', 'read'],
      ]);
      expect(decisions[2]!.floor).not.toBe('0/0'); // the session's write
      expect(decisions[2]!.consistency).toBe('session');
    } finally {
      await router.close();
    }
  });

  it('DEBUG=pg-replica-router writes one line per decision to stderr; without it, nothing', async () => {
    const run = (debug: string | undefined) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../fixtures/debug-env-app.ts', import.meta.url))], {
        env: { ...process.env, DEBUG: debug, PRIMARY_URL: urlAs(cluster.primary), REPLICA_URL: urlAs(cluster.replicas[0]!) },
        timeout: 60_000,
      });
    const on = await run('express:*,pg-replica-router');
    const lines = on.stderr.split('\n').filter((l) => l.startsWith('pg-replica-router route'));
    // right after start the router sends everything to the primary ('starting', 'no-replica') until its monitor has polled
    expect(lines[0]).toMatch(/^pg-replica-router route primary \(primary\) [a-z-]+ floor=\d+\/[0-9A-F]+ session write$/);
    expect(lines[1]).toMatch(/^pg-replica-router route \S+ \((primary|replica)\) [a-z-]+ floor=\d+\/[0-9A-F]+ session read$/);
    expect(lines).toHaveLength(2);
    const off = await run(undefined);
    expect(off.stderr).not.toMatch(/pg-replica-router route/);
  });
});
