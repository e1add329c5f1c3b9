import { describe, expect, it } from 'vitest';
import { createRouter, memoryStore } from 'pg-replica-router';
import { resolveRouterOptions } from '../../lib/options.js';

const primary = { connectionString: 'postgres://localhost/x' };
const invalid = (message: RegExp) => expect.objectContaining({ code: 'ERR_PGRR_INVALID_OPTION', message: expect.stringMatching(message) });

describe('createRouter options', () => {
  it('fills in defaults', () => {
    const resolved = resolveRouterOptions({ primary, replicas: [{ connectionString: 'a' }, { name: 'east', connectionString: 'b' }] });
    expect(resolved).toMatchObject({
      consistency: 'session',
      maxWaitMs: 0,
      monitor: { intervalMs: 500, timeoutMs: 1000, downAfter: 2, upAfter: 2 },
      replicas: [
        { name: 'replica1', config: { connectionString: 'a' } },
        { name: 'east', config: { connectionString: 'b' } },
      ],
    });
  });

  it.each([
    [{}, /primary is required/],
    [{ primary: 'postgres://x' }, /primary must be a pg.PoolConfig object/],
    [{ primary, replicas: {} }, /replicas must be an array/],
    [{ primary, replicas: [{ name: 'primary' }] }, /"primary" is reserved/],
    [{ primary, replicas: [{ name: 'a' }, { name: 'a' }] }, /"a" is used twice/],
    [{ primary, replicas: [{ name: 'has space' }] }, /name must be/],
    [{ primary, consistency: 'strong' }, /consistency must be 'primary', 'session'/],
    [{ primary, consistency: { maxStalenessMs: -1 } }, /consistency must be/],
    [{ primary, consistency: { maxStalenessMs: 5, extra: 1 } }, /consistency must be/],
    [{ primary, maxWaitMs: -1 }, /maxWaitMs must be an integer from 0 to 60000/],
    [{ primary, maxWaitMs: 1.5 }, /maxWaitMs/],
    [{ primary, monitor: { intervalMs: 0 } }, /monitor.intervalMs/],
    [{ primary, monitor: { interval: 100 } }, /unknown option "monitor.interval" \(did you mean "monitor.intervalMs"\?\)/],
    [{ primary, store: {} }, /store must implement LsnStore/],
    [{ primary, writeFunctions: ['drop table x'] }, /writeFunctions/],
    [{ primary, consistancy: 'session' }, /unknown option "consistancy" \(did you mean "consistency"\?\)/],
    // what a missing environment variable or another driver's habit looks like
    [{ primary: { connectionString: undefined } }, /primary.connectionString is undefined: is its environment variable/],
    [{ primary: { connectionString: '' } }, /primary.connectionString is empty/],
    [
      { primary: { connectionstring: 'postgres://x' } },
      /primary.connectionstring is not a pg setting \(did you mean "connectionString"\?\)/,
    ],
    [{ primary: { url: 'postgres://x' } }, /primary.url is not a pg setting \(did you mean "connectionString"\?\)/],
    [{ primary, replicas: [{ name: 'r1', hostname: 'x' }] }, /replicas\[0\].hostname is not a pg setting \(did you mean "host"\?\)/],
    [{ primary, replicas: [{ name: 'r1', conectionTimeoutMillis: 5 }] }, /did you mean "connectionTimeoutMillis"/],
    [{ primary, replicas: [{ name: 'r1', connectionString: undefined }] }, /replicas\[0\].connectionString is undefined/],
    [{ primary, tokenSecret: undefined }, /tokenSecret is undefined: is its environment variable set\? Leave the option out/],
  ])('rejects %j', (options, message) => {
    expect(() => createRouter(options as never)).toThrow(invalid(message));
  });

  it('warns once, not throws, for a key pg does not know and that resembles none of its settings', () => {
    const warnings: string[] = [];
    const logger = { warn: (message: string) => warnings.push(message) };
    resolveRouterOptions({ primary: { ...primary, myAppTag: 'x' } as never, replicas: [{ name: 'r1', myAppTag: 'y' } as never], logger });
    expect(warnings).toEqual([
      expect.stringMatching(/primary.myAppTag is not a pg setting node-postgres knows/),
      expect.stringMatching(/replicas\[0\].myAppTag is not a pg setting/),
    ]);
    expect(() => resolveRouterOptions({ primary: { ...primary, ssl: false, max: 5, application_name: 'a' }, logger })).not.toThrow();
    expect(warnings).toHaveLength(2);
  });

  it('validates memoryStore options', () => {
    expect(() => memoryStore({ maxSessions: 0 })).toThrow(invalid(/maxSessions/));
    expect(() => memoryStore({ ttlSeconds: -1 })).toThrow(invalid(/ttlSeconds/));
  });

  it('memoryStore never lowers a position', async () => {
    const store = memoryStore();
    await store.raise('k', { lsn: 10n }, undefined);
    await store.raise('k', { lsn: 5n }, undefined);
    expect((await store.get('k'))?.lsn).toBe(10n);
    await store.raise('k', { lsn: 11n }, undefined);
    expect((await store.get('k'))?.lsn).toBe(11n);
    expect(await store.get('other')).toBeUndefined();
  });
});

describe('redisStore typing', () => {
  it('accepts an ioredis client', async () => {
    const { Redis } = await import('ioredis');
    const { redisStore } = await import('pg-replica-router');
    const client = new Redis({ lazyConnect: true });
    expect(() => redisStore(client)).not.toThrow();
    expect(() => redisStore({} as never)).toThrow(invalid(/ioredis client/));
    expect(() => redisStore(client, { ttlSeconds: 0 })).toThrow(invalid(/ttlSeconds/));
    client.disconnect();
  });

  it("refuses a Cluster that reads from Redis replicas (scaleReads other than 'master')", async () => {
    const { Cluster } = await import('ioredis');
    const { redisStore } = await import('pg-replica-router');
    for (const scaleReads of ['slave', 'all'] as const) {
      const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true, scaleReads });
      expect(() => redisStore(cluster)).toThrow(invalid(/scaleReads/));
      cluster.disconnect();
    }
    const masters = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    expect(() => redisStore(masters)).not.toThrow();
    masters.disconnect();
  });
});

describe('ORM adapter options', () => {
  it('knexConfig refuses what Knex would ignore or misuse', async () => {
    const { createRouter } = await import('pg-replica-router');
    const { knexConfig } = await import('pg-replica-router/knex');
    const router = createRouter({ primary: { connectionString: 'postgres://127.0.0.1:1/x' }, logger: false });
    try {
      // Knex's own pg dialect, with its cancellation sent through the router.
      const { client } = knexConfig(router);
      expect((client as unknown as { prototype: { dialect: string; driverName: string } }).prototype).toMatchObject({
        dialect: 'postgresql',
        driverName: 'pg',
      });
      expect(() => knexConfig(router, { connection: 'postgres://x' })).toThrow(invalid(/leave 'connection' out/));
      expect(() => knexConfig(router, { searchPath: ['app'] })).toThrow(invalid(/searchPath/));
    } finally {
      await router.close();
    }
  });

  it('typeormDriver hands out the router pool once', async () => {
    const { createRouter } = await import('pg-replica-router');
    const { typeormDriver } = await import('pg-replica-router/typeorm');
    const router = createRouter({ primary: { connectionString: 'postgres://127.0.0.1:1/x' }, logger: false });
    try {
      const driver = typeormDriver(router);
      expect(new driver.Pool({})).toBe(router.pool);
      expect(() => new driver.Pool({})).toThrow(invalid(/second pool/));
      expect('native' in driver).toBe(false);
    } finally {
      await router.close();
    }
  });
});
