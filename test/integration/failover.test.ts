import { describe, expect, it } from 'vitest';
import { createRouter, parseLsn, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { urlAs, useRoutedCluster } from '../helpers/cluster.js';
import { tokenPosition } from '../helpers/tokens.js';

const SECRET = 'failover test secret, 16+ bytes';
let cluster: Cluster;
let before: Router;

useRoutedCluster({ router: { tokenSecret: SECRET }, setup: ['create table t (id int)'] }, (c, r) => {
  [cluster, before] = [c, r];
});

describe('failover safety', () => {
  it('after a promotion, positions of the old history mean "the current primary position", never "no floor"', async () => {
    const [r1, r2] = cluster.replicas as [Cluster['replicas'][number], Cluster['replicas'][number]];
    // A token from the old history, far ahead: the old primary keeps writing after r2 splits off.
    await r2.promote();
    for (let i = 0; i < 20; i++) await cluster.primary.query('insert into t select generate_series(1, 500)');
    const oldToken = await before.withSession('u', async () => {
      await before.query('insert into t values (1)');
      return before.currentToken();
    });
    const old = tokenPosition(oldToken);
    expect(old.timeline).toBe(1);

    // The application now points at the promoted node (timeline 2); r1 still follows the old primary.
    const after = createRouter({
      primary: { connectionString: urlAs(r2) },
      replicas: [{ name: 'r1', connectionString: urlAs(r1) }],
      monitor: { intervalMs: 100 },
      tokenSecret: SECRET,
    });
    try {
      await after.query('select 1');
      await engineOf(after)!.monitor.ready; // r1's first poll (statements wait for the primary's only)
      const r1State = after.topology().nodes.find((n) => n.name === 'r1');
      expect(r1State?.status).toBe('other-history'); // out of rotation: another WAL history

      const newPrimaryLsn = parseLsn((await r2.query('select pg_current_wal_insert_lsn()::text as lsn'))[0]!.lsn as string);
      const positionReadsBefore = after.topology().counters.positionReads;
      const resynced = await after.withToken(oldToken, async () => {
        await after.query('select count(*) from t'); // first read: the floor is resolved
        return tokenPosition(await after.currentToken());
      });
      expect(after.topology().counters.positionReads).toBe(positionReadsBefore + 1); // read the new primary's position
      expect(resynced.timeline).toBe(2);
      expect(resynced.lsn).toBeGreaterThanOrEqual(newPrimaryLsn); // the current primary position ...
      expect(resynced.lsn).not.toBe(old.lsn); // ... not the old history's LSN ...
      expect(resynced.lsn).toBeGreaterThan(0n); // ... and never "no floor"
      expect(after.topology().counters.tokensAccepted).toBe(1);
    } finally {
      await after.close();
    }
  });
});
