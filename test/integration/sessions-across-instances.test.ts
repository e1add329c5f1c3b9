import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn, redisStore, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { encodePosition } from '../../lib/position.js';
import { encodeToken } from '../../lib/token.js';
import { naivePool, routerFor, settle, startTestCluster } from '../helpers/cluster.js';
import { tokenPosition } from '../helpers/tokens.js';

const SECRET = 'a test secret of at least 16 bytes';
let cluster: Cluster;
let redisA: Redis;
let redisB: Redis;
let a: Router; // two application instances sharing one Redis
let b: Router;

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2, redis: true });
  redisA = new Redis(cluster.redis!.url);
  redisB = new Redis(cluster.redis!.url);
  a = routerFor(cluster, { store: redisStore(redisA), tokenSecret: SECRET });
  b = routerFor(cluster, { store: redisStore(redisB), tokenSecret: SECRET });
  await a.query('create table posts (id serial primary key, author text, body text)');
  await settle(a, cluster);
  await settle(b, cluster);
});

afterEach(async () => {
  for (const replica of cluster.replicas) await replica.resumeReplay();
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  redisA?.disconnect();
  redisB?.disconnect();
  await cluster?.stop();
});

async function pauseAll(): Promise<void> {
  for (const replica of cluster.replicas) await replica.pauseReplay();
}

async function naiveCount(author: string): Promise<number> {
  const pool = naivePool(cluster.replicas[0]!.connectionString);
  try {
    return (await pool.query('select count(*)::int as n from posts where author = $1', [author])).rows[0].n;
  } finally {
    await pool.end();
  }
}

const count = (router: Router, author: string) =>
  router.query('select count(*)::int as n from posts where author = $1', [author]).then((r) => r.rows[0]!.n as number);

describe('two routers sharing one Redis (two app instances)', () => {
  it('a write through one is read through the other', async () => {
    // A session already known to the store (a key it does not hold is owed the primary's position).
    await b.withSession('user:someone-else', () => count(b, 'ann'));
    await pauseAll();
    await a.withSession('user:ann', () => a.query("insert into posts (author, body) values ('ann', 'hi')"));
    expect(await b.withSession('user:ann', () => count(b, 'ann'))).toBe(1);
    expect(await naiveCount('ann')).toBe(0); // the naive path is stale
    expect(await b.withSession('user:someone-else', () => count(b, 'ann'))).toBe(0); // and so is a stranger's
  });

  it('concurrent writes in one session never lower its stored position', async () => {
    await settle(a, cluster);
    await pauseAll();
    const positions = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        (i % 2 ? a : b).withSession('user:busy', async () => {
          const router = i % 2 ? a : b;
          await router.query("insert into posts (author, body) values ('busy', $1)", [`post ${i}`]);
          return tokenPosition(await router.currentToken()).lsn; // this scope's position
        }),
      ),
    );
    const highest = positions.reduce((x, y) => (x > y ? x : y));
    const stored = await redisStore(redisA).get('user:busy');
    expect(stored?.lsn).toBeGreaterThanOrEqual(highest);
    expect(await a.withSession('user:busy', () => count(a, 'busy'))).toBe(30);
    expect(await b.withSession('user:busy', () => count(b, 'busy'))).toBe(30);
    expect(await naiveCount('busy')).toBe(0);
  });
});

describe('tokens', () => {
  it("a token from session A makes session B read A's write", async () => {
    await settle(a, cluster);
    await b.withSession('user:bob', () => count(b, 'alice')); // bob is a known session, before alice writes
    await pauseAll();
    const token = await a.withSession('user:alice', async () => {
      await a.query("insert into posts (author, body) values ('alice', 'for bob')");
      return a.currentToken();
    });
    expect(await b.withSession('user:bob', () => count(b, 'alice'))).toBe(0); // without the token: stale is allowed
    expect(await b.withSession('user:bob', () => b.withToken(token, () => count(b, 'alice')))).toBe(1);
    // a background job with the token, outside any session
    expect(await b.withToken(token, () => count(b, 'alice'))).toBe(1);
    expect(await naiveCount('alice')).toBe(0);
  });

  it("a tampered, forged, oversized, malformed or foreign token never lowers B's floor and never throws", async () => {
    await settle(a, cluster);
    await pauseAll();
    const good = await a.withSession('user:carol', async () => {
      await a.query("insert into posts (author, body) values ('carol', 'x')");
      return a.currentToken();
    });
    // B wrote too: its own floor must hold whatever token comes in.
    await b.withSession('user:dave', () => b.query("insert into posts (author, body) values ('dave', 'mine')"));
    const [version, payload, signature] = good.split('.') as [string, string, string];
    const position = tokenPosition(good);
    const lowered = Buffer.from(encodePosition({ ...position, lsn: 0n })).toString('base64url');
    const foreign = encodeToken({ ...position, systemId: '1234567890' }, Buffer.from(SECRET));
    const bad: Record<string, unknown> = {
      forged: `${version}.${lowered}.${signature}`,
      wrongKey: encodeToken({ ...position, lsn: 0n }, Buffer.from('some other secret, 16+ bytes')),
      oversized: `${good}${'A'.repeat(600)}`,
      malformed: 'not-a-token',
      version: `9.${payload}.${signature}`,
      foreign,
      empty: '',
      notAString: { lsn: '0/0' },
    };
    const before = b.topology().counters.tokensRejected;
    for (const [name, token] of Object.entries(bad)) {
      const n = await b.withSession('user:dave', () => b.withToken(token as string, () => count(b, 'dave')));
      expect(n, name).toBe(1); // dave still reads his own write
    }
    const after = b.topology().counters.tokensRejected;
    expect(after.forged - before.forged).toBe(2);
    expect(after.oversized - before.oversized).toBe(1);
    expect(after.malformed - before.malformed).toBe(3);
    expect(after.version - before.version).toBe(1);
    expect(after.foreign - before.foreign).toBe(1);
  });

  it('without tokenSecret, tokens are refused with a clear error', async () => {
    const plain = routerFor(cluster);
    try {
      await expect(plain.currentToken()).rejects.toMatchObject({ code: 'ERR_PGRR_NO_TOKEN_SECRET' });
      expect(() => plain.withToken('x', () => 1)).toThrow(expect.objectContaining({ code: 'ERR_PGRR_NO_TOKEN_SECRET' }));
    } finally {
      await plain.close();
    }
  });

  it("a token carries the session's write position and cluster identity", async () => {
    await settle(a, cluster);
    const token = await a.withSession('user:erin', async () => {
      await a.query("insert into posts (author, body) values ('erin', 'x')");
      return a.currentToken();
    });
    const position = tokenPosition(token);
    expect(position.lsn).toBeLessThanOrEqual(parseLsn(await cluster.primary.insertLsn()));
    expect(position.lsn).toBeGreaterThan(0n);
    expect(position.timeline).toBe(1);
    expect(position.systemId).toMatch(/^\d+$/);
  });
});
