// The multi-process drill's set-up: a cluster with Redis, a fault proxy in front of every node
// and Redis, and router instances in separate OS processes for two services with different
// replica lists, all sharing Redis and the token secret, connected as the application role.
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { proxyNode, startCluster, type Cluster, type FaultProxy } from 'pg-replica-router/testing';
import { asAppRole, createAppRole } from '../helpers/app-role.js';
import { nodeByPort } from '../helpers/cluster.js';
import { httpTarget, seedStatements, startWorkload, type Workload, type WorkloadOptions } from '../workload/driver.js';
import { violations, type Failure, type Op } from '../workload/history.js';
import type { DrillReport } from './drill.js';
import { DRILL_GRANTS, SECRET } from './drill.js';
import { startInstance, type Instance, type InstanceConfig } from './instances.js';

export interface MultiEnv {
  cluster: Cluster;
  /** Proxies the instances reach the nodes and Redis through. */
  proxies: { primary: FaultProxy; r1: FaultProxy; r2: FaultProxy; redis: FaultProxy };
  /** The test's own Redis client, straight to Redis (for FLUSHALL). */
  redis: Redis;
  instances: Instance[];
  sessions: number;
  /** The cluster's replicas (by the cluster's names) each service lists. */
  lists: Record<string, string[]>;
}

/**
 * Service A names r1 `replica1` and r2 `replica2`; service B has only r2, and calls it
 * `replica1`: a name that stands for another server in each service. Two instances of A, one
 * of B. The application sets its own bounds: the primary gives up connecting after 1 s and
 * waits 2 s for an answer (the router leaves the primary's pool as configured), replicas have a
 * `statement_timeout` of 1 s (the router then bounds a read on a silent replica at 1 s more).
 */
export function useMultiProcessDrill(options: { sessions?: number } = {}): () => MultiEnv {
  let env: MultiEnv | undefined;
  const started: Instance[] = [];
  beforeAll(async () => {
    const cluster = await startCluster({ replicas: 2, redis: true });
    const sessions = options.sessions ?? 12;
    for (const statement of seedStatements({ targets: [{ target: { transport: 'http' }, sessions }], sharedRows: 5 })) {
      await cluster.primary.query(statement);
    }
    await createAppRole(cluster, DRILL_GRANTS);
    const [primary, r1, r2, redisProxy] = await Promise.all([
      proxyNode(cluster.primary),
      proxyNode(cluster.replicas[0]!),
      proxyNode(cluster.replicas[1]!),
      proxyNode(cluster.redis!),
    ]);
    const base = {
      primary: { connectionString: asAppRole(primary.connectionString), connectionTimeoutMillis: 1000, query_timeout: 2000 },
      redisUrl: redisProxy.connectionString,
      secret: SECRET,
    };
    const replica = (name: string, connectionString: string) => ({
      name,
      connectionString: asAppRole(connectionString),
      statement_timeout: 1000,
    });
    const serviceA: InstanceConfig = {
      ...base,
      service: 'A',
      replicas: [replica('replica1', r1.connectionString), replica('replica2', r2.connectionString)],
    };
    const serviceB: InstanceConfig = { ...base, service: 'B', replicas: [replica('replica1', r2.connectionString)] };
    const instances = await Promise.all([startInstance('A1', serviceA), startInstance('A2', serviceA), startInstance('B1', serviceB)]);
    started.push(...instances);
    const redis = new Redis(cluster.redis!.url);
    redis.on('error', () => {});
    env = {
      cluster,
      proxies: { primary: primary.proxy, r1: r1.proxy, r2: r2.proxy, redis: redisProxy.proxy },
      redis,
      instances,
      sessions,
      lists: { A: ['r1', 'r2'], B: ['r2'] },
    };
  }, 180_000);
  afterAll(async () => {
    for (const instance of started) {
      const err = instance.stderr().trim();
      if (err) console.log(`[drill] instance ${instance.name} wrote to stderr:\n${err.slice(-2000)}`);
    }
    await Promise.all(started.map((i) => i.stop()));
    env?.redis.disconnect();
    for (const proxy of Object.values(env?.proxies ?? {})) {
      proxy.setMode('pass');
      await proxy.close();
    }
    await env?.cluster.stop();
  });
  return () => {
    if (!env) throw new Error('multi-process drill not started');
    return env;
  };
}

/** HTTP sessions spread over every instance of both services, handing tokens to each other. */
export function startSpreadWorkload(env: MultiEnv, load: Partial<WorkloadOptions> = {}): Workload {
  return startWorkload({
    targets: [{ target: httpTarget(env.instances.map((i) => i.url)), sessions: env.sessions }],
    sharedRows: 5,
    nodeName: (port) => nodeByPort(env.cluster, port),
    // Writes often enough that Redis emptied under lagging replicas finds positions to lose.
    writeShare: 0.3,
    handoffShare: 0.3,
    thinkMs: 5,
    ...load,
  });
}

/**
 * Hand-offs by the services of the sender's write and of the receiver's read with the token
 * (`A→B`, `B→A`, `A→A`, `B→B`).
 */
export function handoffsByService(history: readonly Op[], instances: readonly Instance[]): Record<string, number> {
  const service = new Map(instances.map((i) => [i.url, i.service]));
  const writes = new Map(history.filter((op) => op.kind === 'write').map((op) => [`${op.row}#${op.version}`, op]));
  const bySession = new Map<string, Op[]>();
  for (const op of history) bySession.set(op.session, [...(bySession.get(op.session) ?? []), op]);
  const counts: Record<string, number> = {};
  for (const ops of bySession.values()) {
    ops.sort((a, b) => a.start - b.start);
    ops.forEach((op, i) => {
      if (op.kind !== 'handoff') return;
      const sent = writes.get(`${op.row}#${op.version}`);
      const read = ops.slice(i + 1).find((next) => next.kind === 'read' && next.row === op.row);
      if (!sent?.via || !read?.via) return;
      const key = `${service.get(sent.via)}→${service.get(read.via)}`;
      counts[key] = (counts[key] ?? 0) + 1;
    });
  }
  return counts;
}

/** performance.now() as ms since the run's first operation (the clock of the reports). */
export function clock(report: DrillReport): (t: number) => number {
  const start = Math.min(...report.result.history.map((op) => op.start), ...report.result.failures.map((f) => f.start));
  return (t) => Math.round(t - start);
}

/**
 * What a report needs to trace a violation or an unexpected failure to its cause: the first
 * ones, each with the instance that served it and its session's operations in the 2 s before.
 */
export function explain(report: DrillReport, unexpected: readonly Failure[], instances: readonly Instance[]): Record<string, unknown> {
  const at = clock(report);
  const name = new Map(instances.map((i) => [i.url, `${i.name} (${i.service})`]));
  const { history } = report.result;
  const show = (op: Op | Failure) => ({
    kind: op.kind,
    row: op.row,
    ...('version' in op ? { version: op.version, node: op.node } : { code: op.code, message: op.message }),
    instance: op.via === undefined ? undefined : name.get(op.via),
    phase: op.phase,
    start: at(op.start),
    end: at(op.end),
  });
  const before = (session: string, t: number) =>
    history.filter((op) => op.session === session && op.start < t && op.start > t - 2000).map(show);
  return {
    violationDetails: violations(history)
      .slice(0, 10)
      .map((v) => ({
        kind: v.kind,
        session: v.read.session,
        read: show(v.read),
        bound: show(v.bound),
        before: before(v.read.session, v.read.start),
      })),
    unexpectedFailures: unexpected.slice(0, 10).map((f) => ({ session: f.session, failure: show(f), before: before(f.session, f.start) })),
  };
}

/**
 * Whether the session's last acknowledged read before `failure` ran on a replica that the
 * service of the instance `failure` went to does not list, and ended after `since`.
 */
export function lastReadOnAServerItDoesNotList(env: MultiEnv, history: readonly Op[], failure: Failure, since: number): boolean {
  const service = env.instances.find((i) => i.url === failure.via)?.service;
  const last = history
    .filter((op) => op.session === failure.session && op.kind === 'read' && op.end <= failure.start)
    .reduce<Op | undefined>((a, b) => (a && a.end > b.end ? a : b), undefined);
  if (!service || !last || last.node === 'primary') return false;
  return !env.lists[service]!.includes(last.node) && last.end >= since;
}
