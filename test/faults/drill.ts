// Fault drills: a steady concurrent load (sessions in-process and over HTTP, handing tokens to each
// other) runs while a fault is injected and healed; the history checker then counts violations.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect } from 'vitest';
import { redisStore, type Router, type RouterOptions } from 'pg-replica-router';
import { startCluster, type Cluster, type ClusterOptions } from 'pg-replica-router/testing';
import { appRoleNodes, createAppRole } from '../helpers/app-role.js';
import { nodeByPort, routerFor, settle } from '../helpers/cluster.js';
import { listen } from '../helpers/http.js';
import {
  directTarget,
  httpTarget,
  seedStatements,
  startWorkload,
  workloadApp,
  type Workload,
  type WorkloadOptions,
  type WorkloadResult,
} from '../workload/driver.js';
import { check, percentile, type Failure, type Violations } from '../workload/history.js';
import { isConnectionError } from '../../lib/pg-args.js';
import { writeDrillReport } from './report.js';

export const SECRET = 'fault drills: consistency token secret';

export interface DrillEnv {
  cluster: Cluster;
  router: Router;
  /** The application's ioredis client (the router's store uses it). */
  redis: Redis;
  /** Base URL of the Express app over the router. */
  url: string;
  workload: Pick<WorkloadOptions, 'targets' | 'sharedRows'>;
}

/** What the drills' application role may do: read and increment the workload's counters. */
export const DRILL_GRANTS = ['select, update on counters'];

/**
 * The drill set-up for one test file: a cluster with Redis, the workload's table, a router over it
 * (Redis store, tokens, `maxWaitMs` 200, fast monitor, store timeouts) connected as the
 * application role (`role: 'superuser'` for the cluster's superuser), and the Express app.
 */
export function useDrillCluster(
  options: {
    cluster?: ClusterOptions;
    router?: Partial<RouterOptions>;
    sessions?: number;
    /** Who the router connects as: the least-privilege application role (default), or the superuser. */
    role?: 'app' | 'superuser';
  } = {},
): () => DrillEnv {
  let env: DrillEnv | undefined;
  let close: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const cluster = await startCluster({ replicas: 2, redis: true, ...options.cluster });
    const sessions = options.sessions ?? 8;
    const shape = {
      targets: [
        { target: { transport: 'direct' as const }, sessions },
        { target: { transport: 'http' as const }, sessions },
      ],
      sharedRows: 5,
    };
    // The table belongs to the superuser; the application role only gets the grants.
    for (const statement of seedStatements(shape)) await cluster.primary.query(statement);
    const asApp = (options.role ?? 'app') === 'app';
    if (asApp) await createAppRole(cluster, DRILL_GRANTS);
    const redis = new Redis(cluster.redis!.url);
    redis.on('error', () => {});
    const router = routerFor(
      cluster,
      {
        ...(asApp ? appRoleNodes(cluster) : {}),
        store: redisStore(redis),
        tokenSecret: SECRET,
        maxWaitMs: 200,
        storeTimeoutMs: 50,
        storeBreaker: { failures: 3, cooldownMs: 300 },
        logger: false,
        ...options.router,
      },
      asApp ? 'app' : 'superuser',
    );
    const server = await listen(workloadApp(router));
    close = server.close;
    const workload = {
      targets: [
        { target: directTarget(router), sessions },
        { target: httpTarget(server.url), sessions },
      ],
      sharedRows: shape.sharedRows,
    };
    await settle(router, cluster);
    env = { cluster, router, redis, url: server.url, workload };
  });
  afterAll(async () => {
    await close?.();
    await env?.router.close();
    env?.redis.disconnect();
    await env?.cluster.stop();
  });
  return () => {
    if (!env) throw new Error('drill cluster not started');
    return env;
  };
}

export interface DrillReport {
  name: string;
  violations: Violations;
  /** Operations per phase: acknowledged reads, those served by replicas, writes, failures. */
  phases: Record<string, { reads: number; replicaReads: number; writes: number; handoffs: number; failures: number }>;
  /** Failures by `kind code`. */
  failures: Record<string, number>;
  /** Failures by `kind transport` (`read direct`, `write http`…). */
  failuresByTransport: Record<string, number>;
  /** The longest any operation (acknowledged or failed) took, in ms. */
  maxOperationMs: number;
  p99Ms: number;
  durationMs: number;
  result: WorkloadResult;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the router's monitor sees every listed replica up and caught up. */
export async function waitForReplicaRouting(
  env: DrillEnv,
  names: string[] = env.cluster.replicas.map((r) => r.name),
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nodes = env.router.topology().nodes;
    if (names.every((name) => nodes.some((n) => n.name === name && n.status === 'up' && (n.lagBytes ?? 1) < 1_000_000))) return;
    if (Date.now() > deadline) throw new Error(`replicas ${names.join(', ')} not back in rotation: ${JSON.stringify(nodes)}`);
    await sleep(50);
  }
}

/**
 * Runs one drill: load for `steadyMs`, then `fault()` (inject the fault and hold it), then
 * `heal()`, then load until the replicas are back in rotation and for `recoveredMs` more. Waits
 * for the pools to go back to idle and returns the report.
 */
export async function drill(
  env: DrillEnv,
  name: string,
  steps: {
    fault: (load: Workload) => Promise<void>;
    heal?: (load: Workload) => Promise<void>;
    steadyMs?: number;
    recoveredMs?: number;
    /** Replicas that must be back in rotation before the `recovered` phase (default: every replica). */
    replicas?: string[];
    load?: Partial<WorkloadOptions>;
  },
): Promise<DrillReport> {
  const load = startWorkload({
    ...env.workload,
    nodeName: (port) => nodeByPort(env.cluster, port),
    handoffShare: 0.3,
    thinkMs: 5,
    ...steps.load,
  });
  let result: WorkloadResult;
  try {
    await sleep(steps.steadyMs ?? 1000);
    await steady(load);
    load.phase('fault');
    await steps.fault(load);
    load.phase('healing');
    await steps.heal?.(load);
    await waitForReplicaRouting(env, steps.replicas);
    load.phase('recovered');
    await sleep(steps.recoveredMs ?? 1500);
  } finally {
    result = await load.stop();
  }
  const report = summarize(name, result);
  await waitForIdlePools(env.router);
  writeDrillReport(report);
  return report;
}

/**
 * Waits (up to 20 s) until the load runs in its steady state: of the last 20 acknowledged reads,
 * at least `share` (default all) were served by replicas. On a loaded machine the first reads may
 * all go to the primary (the monitor is still catching up), and a fault injected then would test
 * a different situation. A write-heavy load reads some writes back on the primary.
 */
export async function steady(load: Workload, share = 1): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const reads = load.history.filter((op) => op.kind === 'read').slice(-20);
    if (reads.length === 20 && reads.filter((op) => op.node !== 'primary').length >= share * 20) return;
    if (Date.now() > deadline) throw new Error(`the load never settled on the replicas: ${JSON.stringify(reads.map((op) => op.node))}`);
    await sleep(50);
  }
}

export function summarize(name: string, result: WorkloadResult): DrillReport {
  const phases: DrillReport['phases'] = {};
  const bucket = (phase: string) => (phases[phase] ??= { reads: 0, replicaReads: 0, writes: 0, handoffs: 0, failures: 0 });
  for (const op of result.history) {
    const b = bucket(op.phase);
    if (op.kind === 'read') {
      b.reads++;
      if (op.node !== 'primary') b.replicaReads++;
    } else if (op.kind === 'write') b.writes++;
    else b.handoffs++;
  }
  const failures: Record<string, number> = {};
  const failuresByTransport: Record<string, number> = {};
  for (const f of result.failures) {
    bucket(f.phase).failures++;
    failures[`${f.kind} ${f.code}`] = (failures[`${f.kind} ${f.code}`] ?? 0) + 1;
    const byTransport = `${f.kind} ${f.transport}`;
    failuresByTransport[byTransport] = (failuresByTransport[byTransport] ?? 0) + 1;
  }
  const durations = [...result.history.filter((o) => o.kind !== 'handoff'), ...result.failures].map((o) => o.end - o.start);
  return {
    name,
    violations: check(result.history),
    phases,
    failures,
    failuresByTransport,
    maxOperationMs: Math.round(Math.max(0, ...durations)),
    p99Ms: Number(percentile(durations, 99).toFixed(1)),
    durationMs: Math.round(result.durationMs),
    result,
  };
}

/** Resolves once every connection of the router's pools is idle again (none checked out, none waiting). */
export async function waitForIdlePools(router: Router, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { totalCount, idleCount, waitingCount } = router.pool;
    if (totalCount === idleCount && waitingCount === 0) return;
    if (Date.now() > deadline) throw new Error(`pools not idle: total ${totalCount}, idle ${idleCount}, waiting ${waitingCount}`);
    await sleep(20);
  }
}

/**
 * The assertions every drill makes: no violation, no failure but the expected ones, the load kept
 * going during the fault, no operation hung, and reads went back to the replicas afterwards.
 */
export function expectDrillHeld(report: DrillReport, expected: (f: Failure) => boolean = () => false): void {
  expect(report.violations).toEqual({ ryw: 0, mr: 0, handoff: 0 });
  expect(report.result.failures.filter((f) => !expected(f))).toEqual([]);
  const fault = report.phases.fault;
  expect(fault?.reads ?? 0, 'reads acknowledged during the fault').toBeGreaterThan(0);
  expect(report.phases.recovered?.replicaReads ?? 0, 'reads served by replicas after recovery').toBeGreaterThan(0);
  // A liveness bound, not a speed measurement: nothing waited on a dead node.
  expect(report.maxOperationMs).toBeLessThan(10_000);
  // Token hand-offs happened, so the check covered them.
  expect(Object.values(report.phases).reduce((n, p) => n + p.handoffs, 0)).toBeGreaterThan(0);
}

/** A failure caused by a lost or refused connection, by the router's own classifier (pg raises some without a code). */
export function isConnectionFailure(f: Failure): boolean {
  return isConnectionError(Object.assign(new Error(f.message), { code: f.code }));
}

export { sleep };
