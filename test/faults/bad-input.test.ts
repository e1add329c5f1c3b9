import { describe, expect, it } from 'vitest';
import { createRouter, redisKeyFor } from 'pg-replica-router';
import { startCluster } from 'pg-replica-router/testing';
import { drill, expectDrillHeld, SECRET, sleep, useDrillCluster } from './drill.js';

const env = useDrillCluster();

/** A token from another PostgreSQL cluster, signed with the same secret (a shared secret across environments). */
async function foreignToken(): Promise<string> {
  const other = await startCluster({ replicas: 0 });
  const router = createRouter({ primary: { connectionString: other.primary.connectionString }, tokenSecret: SECRET, logger: false });
  try {
    return await router.withSession('elsewhere', async () => {
      await router.query('create table elsewhere (x int)');
      return router.currentToken();
    });
  } finally {
    await router.close();
    await other.stop();
  }
}

describe('fault drill: bad input', () => {
  it('tampered, truncated, foreign and huge tokens, corrupt Redis values and unparsable SQL: ignored or refused, nothing stale', async () => {
    const { router, redis } = env();
    const foreign = await foreignToken();
    const before = router.topology().counters;
    const storeBefore = router.topology().store;
    const bad = [
      (t: string) => `${t.slice(0, -2)}${t.endsWith('A') ? 'B' : 'A'}A`, // tampered signature
      (t: string) => t.slice(0, Math.floor(t.length / 2)), // truncated
      () => foreign, // another cluster's
      () => `1.${'A'.repeat(4000)}.sig`, // huge (still fits in an HTTP header)
    ];
    let tampered = 0;
    const sqlErrors: Record<string, number> = {};
    let stopSideLoads = false;
    const sideLoads: Array<Promise<void>> = [];
    const report = await drill(env(), 'bad-input', {
      load: {
        handoffShare: 0.5,
        // Half of the hand-offs carry a bad token instead of the real one.
        tamper: (token) => {
          if (Math.random() < 0.5) return undefined;
          tampered++;
          const pick = bad[Math.floor(Math.random() * bad.length)]!;
          return pick(token);
        },
      },
      fault: async () => {
        // Corrupt values in the stored positions of the in-process sessions, again and again.
        sideLoads.push(
          (async () => {
            const junk = ['garbage', '', 'ffffffffffffffff|x|1|r1', '0000000000000001|1|1|bad node', '{"lsn":"0/0"}'];
            for (let i = 0; !stopSideLoads; i++) {
              const key = redisKeyFor(`d${i % 8}`);
              if (i % 7 === 6) {
                await redis.multi().del(key).hset(key, 'not', 'a string').exec(); // the wrong type altogether
              } else await redis.set(key, junk[i % junk.length]!);
              await sleep(20);
            }
          })(),
        );
        // Statements the parser rejects (and PostgreSQL too), inside real sessions.
        sideLoads.push(
          (async () => {
            const statements = [
              'selec v from counters',
              "select 'unterminated",
              'select * from counters where',
              'update counters set v = where',
            ];
            for (let i = 0; !stopSideLoads; i++) {
              await router
                .withSession(`d${i % 8}`, () => router.query(statements[i % statements.length]!))
                .then(
                  () => {
                    sqlErrors['no error'] = (sqlErrors['no error'] ?? 0) + 1;
                  },
                  (err: { code?: string }) => {
                    sqlErrors[err.code ?? 'no code'] = (sqlErrors[err.code ?? 'no code'] ?? 0) + 1;
                  },
                );
              await sleep(10);
            }
          })(),
        );
        await sleep(3000);
        stopSideLoads = true;
        await Promise.all(sideLoads);
      },
    });
    expectDrillHeld(report);
    expect(tampered).toBeGreaterThan(0);
    expect(Object.keys(sqlErrors)).toEqual(['42601']);
    const after = router.topology().counters;
    for (const cause of ['malformed', 'forged', 'oversized', 'foreign'] as const) {
      expect(after.tokensRejected[cause] - before.tokensRejected[cause], `tokens rejected as ${cause}`).toBeGreaterThan(0);
    }
    expect(after.corruptPositions - before.corruptPositions).toBeGreaterThan(0);
    // Corrupt values are per key: they never count as the store failing (which would send everyone to the primary).
    expect(router.topology().store.errors - storeBefore.errors).toBe(0);
  });
});
