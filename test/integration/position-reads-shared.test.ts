import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { naivePool, useRoutedCluster } from '../helpers/cluster.js';

// Scopes that write at the same time share reads of the primary's position: a read serves a
// scope only if it was sent after that scope's write was acknowledged (lib/primary-position.ts),
// so each scope's floor still covers its own write. A replica applying WAL 400 ms late shows the
// naive path stale; the router's reads with each scope's token see every write. (The rule itself —
// never a read sent before the caller asked — is tested without a database in
// test/unit/primary-position.test.ts.)

let cluster: Cluster;
let router: Router;
const SCOPES = 24;

useRoutedCluster(
  {
    cluster: { replicas: 1, applyDelayMs: 400 },
    router: { tokenSecret: 'a shared-positions secret of at least 32 chars', maxWaitMs: 0 },
    setup: ['create table shared_writes (id int primary key, note text)'],
  },
  (c, r) => {
    [cluster, router] = [c, r];
  },
);

describe('position reads after writes, shared by concurrent scopes', () => {
  it(`${SCOPES} scopes writing at once need fewer position reads than scopes, and each reads its own write`, async () => {
    const before = router.topology().counters.positionReads;
    const tokens = await Promise.all(
      Array.from({ length: SCOPES }, (_, i) =>
        router.withSession(`writer:${i}`, async () => {
          await router.query('insert into shared_writes values ($1, $2)', [i, `written by ${i}`]);
          return router.currentToken();
        }),
      ),
    );
    const reads = router.topology().counters.positionReads - before;
    expect(reads).toBeGreaterThan(0);
    expect(reads).toBeLessThan(SCOPES);
    console.log(`${SCOPES} concurrent writing scopes: ${reads} position reads`);

    // The naive path: the lagging replica does not have the rows yet.
    const naive = naivePool(cluster.replicas[0]!.connectionString);
    try {
      const { rows } = await naive.query('select count(*)::int as n from shared_writes');
      expect(rows[0]!.n).toBeLessThan(SCOPES);
    } finally {
      await naive.end();
    }
    // Each scope's token: its own write is seen (on the primary, or on the replica once applied).
    const seen = await Promise.all(
      tokens.map((token, i) =>
        router.withToken(token, async () => (await router.query('select note from shared_writes where id = $1', [i])).rows[0]?.note),
      ),
    );
    expect(seen).toEqual(Array.from({ length: SCOPES }, (_, i) => `written by ${i}`));
  });
});
