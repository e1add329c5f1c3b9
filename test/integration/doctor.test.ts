import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, formatDoctorReport, redisStore, type DoctorReport, type Router, type RouterOptions } from 'pg-replica-router';
import { startPgBouncer, type Cluster } from 'pg-replica-router/testing';
import { startTestCluster, urlAs } from '../helpers/cluster.js';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/round-robin-proxy.js';

// The doctor against real servers: one healthy cluster with Redis (a), another cluster (b) whose
// second replica is stopped, a TCP load balancer spreading one address over a's two replicas.

let a: Cluster;
let b: Cluster;
let balancer: RoundRobinProxy;
const routers: Router[] = [];
const redisClients: Redis[] = [];
const SECRET = 'Zq3v9LrT2mXk8NwB5cYh7JdF4gPs6AeU';

beforeAll(async () => {
  [a, b] = await Promise.all([startTestCluster({ replicas: 2, redis: true }), startTestCluster({ replicas: 2 })]);
  await b.replicas[1]!.stop();
  balancer = await startRoundRobinProxy(a.replicas.map((r) => ({ host: '127.0.0.1', port: r.port })));
}, 180_000);

afterAll(async () => {
  await Promise.all(routers.map((r) => r.close()));
  for (const client of redisClients) client.disconnect();
  await balancer?.close();
  await Promise.all([a?.stop(), b?.stop()]);
});

function redis(): Redis {
  const client = new Redis(a.redis!.url, { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  redisClients.push(client);
  return client;
}

function router(options: Partial<RouterOptions>, warnings: string[] = []): Router {
  const r = createRouter({
    primary: { connectionString: urlAs(a.primary) },
    monitor: { intervalMs: 100, timeoutMs: 2000 },
    logger: { warn: (message) => warnings.push(message) },
    ...options,
  });
  routers.push(r);
  return r;
}

const findings = (report: DoctorReport, node: string | undefined, check: string) =>
  report.findings.filter((f) => f.node === node && f.check === check);
const severity = (report: DoctorReport, node: string | undefined, check: string) => findings(report, node, check).map((f) => f.severity);

describe('router.doctor()', () => {
  it('a sound setup (application role, Redis with noeviction, a random secret): no problem, every replica serving', async () => {
    await redis().config('SET', 'maxmemory-policy', 'noeviction');
    const r = router({
      replicas: a.replicas.map((x) => ({ name: x.name, connectionString: urlAs(x) })),
      store: redisStore(redis()),
      tokenSecret: SECRET,
    });
    const report = await r.doctor();
    expect(report.findings.filter((f) => f.severity === 'problem')).toEqual([]);
    expect(report.ok).toBe(true);
    for (const name of ['primary', 'r1', 'r2']) expect(severity(report, name, 'servers')).toEqual(['ok']);
    expect(severity(report, 'r1', 'identity')).toEqual(['ok']);
    expect(severity(report, 'r1', 'role')).toEqual(['ok']);
    expect(severity(report, undefined, 'store-eviction')).toEqual(['ok']);
    expect(severity(report, undefined, 'token-secret')).toEqual(['ok']);
    // least privilege: said, with what it changes
    expect(findings(report, 'primary', 'privileges')[0]?.message).toMatch(/app is not a superuser.*without pg_read_all_stats/);
    expect(report.nodes.find((n) => n.name === 'r1')).toMatchObject({ reachable: true, inRecovery: true, servers: 1, superuser: false });
    expect(report.nodes.find((n) => n.name === 'r1')?.lagBytes).toBeGreaterThanOrEqual(0);
    expect(report.routing.map((v) => [v.node, v.serving])).toEqual([
      ['primary', true],
      ['r1', true],
      ['r2', true],
    ]);
    expect(formatDoctorReport(report)).toMatch(/No problems/);
  });

  it('finds each misconfiguration, and the router warned of the wrong nodes at start', async () => {
    await redis().config('SET', 'maxmemory-policy', 'allkeys-lru');
    const warnings: string[] = [];
    const r = router(
      {
        replicas: [
          { name: 'stopped', connectionString: urlAs(b.replicas[1]!) },
          { name: 'itself', connectionString: urlAs(a.primary) },
          { name: 'foreign', connectionString: urlAs(b.replicas[0]!) },
          { name: 'balanced', connectionString: urlAs(a.replicas[0]!).replace(`:${a.replicas[0]!.port}/`, `:${balancer.port}/`) },
        ],
        store: redisStore(redis()),
        tokenSecret: 'change-me-change-me-change-me',
      },
      warnings,
    );
    const report = await r.doctor();
    expect(report.ok).toBe(false);
    expect(severity(report, 'stopped', 'reachable')).toEqual(['problem']);
    expect(findings(report, 'itself', 'role')).toEqual([
      expect.objectContaining({ severity: 'problem', message: expect.stringMatching(/the primary itself/) }),
    ]);
    expect(findings(report, 'foreign', 'identity')).toEqual([
      expect.objectContaining({ severity: 'problem', message: expect.stringMatching(/another cluster/) }),
    ]);
    expect(findings(report, 'balanced', 'servers')).toEqual([
      expect.objectContaining({
        severity: 'problem',
        message: expect.stringMatching(/reached 2 different servers: this address is a load balancer/),
      }),
    ]);
    expect(findings(report, undefined, 'store-eviction')).toEqual([
      expect.objectContaining({ severity: 'problem', message: expect.stringMatching(/allkeys-lru/) }),
    ]);
    expect(severity(report, undefined, 'token-secret')).toEqual(['problem']);
    const routing = Object.fromEntries(report.routing.map((v) => [v.node, v.problem]));
    expect(routing).toMatchObject({ primary: 'ok', stopped: 'down', itself: 'primary-as-replica', foreign: 'other-cluster' });
    // Without doctor: the router itself said so once at start, for the three wrong nodes.
    expect(warnings.filter((w) => /replica stopped is unreachable/.test(w))).toHaveLength(1);
    expect(warnings.filter((w) => /replica itself is the primary itself/.test(w))).toHaveLength(1);
    expect(warnings.filter((w) => /replica foreign belongs to another cluster/.test(w))).toHaveLength(1);
    expect(formatDoctorReport(report)).toMatch(/PROBLEM \[balanced\] servers/);
    await redis().config('SET', 'maxmemory-policy', 'noeviction');
  });

  it('a superuser connection and a role that may not read pg_control_system() are told apart from least privilege', async () => {
    const su = router({ replicas: [{ name: 'r1', connectionString: urlAs(a.replicas[0]!, 'superuser') }] }); // a test about privileges
    const suReport = await su.doctor();
    expect(findings(suReport, 'r1', 'privileges')).toEqual([
      expect.objectContaining({ severity: 'warn', message: expect.stringMatching(/is a superuser/) }),
    ]);
    // b's primary (replicated to its replica): the function some managed services withhold
    await b.primary.query('revoke execute on function pg_control_system() from public');
    await b.waitForReplicas();
    const restricted = createRouter({
      primary: { connectionString: urlAs(b.primary) },
      replicas: [{ name: 'b1', connectionString: urlAs(b.replicas[0]!) }],
      logger: false,
    });
    routers.push(restricted);
    const report = await restricted.doctor();
    expect(severity(report, 'b1', 'identity')).toEqual(['warn']);
    expect(findings(report, 'b1', 'privileges')[0]).toMatchObject({
      severity: 'warn',
      message: expect.stringMatching(/pg_control_system\(\) is not executable/),
    });
    expect(severity(report, undefined, 'store')).toEqual(['warn']); // memoryStore: not shared
    expect(severity(report, undefined, 'token-secret')).toEqual(['info']);
  });

  it('a PgBouncer in front is reported, and one PgBouncer is one server', async () => {
    const bouncer = await startPgBouncer(a.replicas[0]!, { poolMode: 'transaction' });
    try {
      const r = router({ replicas: [{ name: 'pooled', connectionString: bouncer.appConnectionString! }], logger: false });
      const report = await r.doctor();
      expect(severity(report, 'pooled', 'pooler')).toEqual(['info']);
      expect(severity(report, 'pooled', 'servers')).toEqual(['ok']);
      expect(report.nodes.find((n) => n.name === 'pooled')?.pooled).toBe(true);
      expect(report.nodes.find((n) => n.name === 'primary')?.pooled).toBe(false);
    } finally {
      await bouncer.stop();
    }
  });
});
