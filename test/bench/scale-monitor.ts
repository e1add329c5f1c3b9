// Scale benchmark, part 1: what an idle router costs over many replicas. Windows of `windowMs`
// with no router (the baseline) and with an idle router (no statements: the monitor alone) at
// each interval, and with plain pg.Pools running the monitor's poll SQL at the fast interval (what
// the same round trips cost without the router), in a rotating order each round: CPU of this
// process per second, polls per second, the monitor backends' CPU on the servers, and the
// connections held per node.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { createRouter, type Router } from '../../lib/index.js';
import { engineOf } from '../../lib/internal.js';
import { MONITOR_APPLICATION_NAME } from '../../lib/monitor-connection.js';
import { POLL_SQL } from '../../lib/node-poll.js';
import type { Cluster, NodeHandle } from '../../lib/testing/index.js';
import { waitFor } from '../../lib/testing/processes.js';
import { appUrl, clusterNodes, fixed, median, sleep } from './scale-util.js';

export interface IdleRouterFigures {
  /** The monitor's `intervalMs` (`default` = the router's default, 500). */
  intervalMs: number | 'default';
  /** CPU µs of this process per second with the router idle, minus the baseline window of the same round (median of rounds). */
  cpuMicrosPerSecond: number;
  /** The same as a percentage of one core. */
  cpuPercentOfCore: number;
  /** Successful monitor polls per second, every node together (the nodes' `successes` counters). */
  pollsPerSecond: number;
  /** `cpuMicrosPerSecond / pollsPerSecond`. */
  cpuMicrosPerPoll: number;
  /** CPU µs per second of the monitor's backends on every server together (/proc/<pid>/schedstat; undefined if unreadable). */
  serverCpuMicrosPerSecond: number | undefined;
  /** Client connections per node while the router was idle: the monitor's (by application_name) and any other. */
  connections: Record<string, { monitor: number; other: number }>;
  /** Monitor connections still open on any node 2 s after `router.close()` (0 unless something leaks). */
  monitorConnectionsAfterClose: number;
  /** Per round: router CPU µs/s before subtracting the baseline. */
  rawCpuMicrosPerSecond: number[];
}

export interface MonitorFigures {
  replicas: number;
  windowMs: number;
  rounds: number;
  /** CPU µs per second of this process in the windows without a router (median). */
  baselineCpuMicrosPerSecond: number;
  idle: IdleRouterFigures[];
  /** One plain pg.Pool (max 1) per node running POLL_SQL every `intervalMs` ±20%, no router: CPU net of the baseline. */
  plainPg: { intervalMs: number; queriesPerSecond: number; cpuMicrosPerSecond: number; cpuMicrosPerQuery: number };
  /** The fast-interval monitor's CPU per poll / plain pg's CPU per query of the same SQL. */
  pollCostRatio: number;
}

type Variant = 'baseline' | 'plain-pg' | number | 'default';

interface Window {
  cpuPerSecond: number;
  pollsPerSecond?: number;
  serverCpuPerSecond?: number | undefined;
  connections?: Record<string, { monitor: number; other: number }>;
  afterClose?: number;
}

const nodesOf = (cluster: Cluster): NodeHandle[] => [cluster.primary, ...cluster.replicas];

/** Client connections on each node, the monitor's apart (the asking connection itself left out). */
async function connectionsPerNode(cluster: Cluster): Promise<Record<string, { monitor: number; other: number; pids: number[] }>> {
  const result: Record<string, { monitor: number; other: number; pids: number[] }> = {};
  await Promise.all(
    nodesOf(cluster).map(async (node) => {
      const rows = await node.query<{ app: string; pid: number }>(
        "select application_name as app, pid from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
      );
      const monitor = rows.filter((r) => r.app === MONITOR_APPLICATION_NAME);
      result[node.name] = { monitor: monitor.length, other: rows.length - monitor.length, pids: monitor.map((r) => r.pid) };
    }),
  );
  return result;
}

/** Nanoseconds on CPU of these processes together (the first field of /proc/<pid>/schedstat); undefined if unreadable. */
function cpuNanosOf(pids: readonly number[]): number | undefined {
  try {
    return pids.reduce((sum, pid) => sum + Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]), 0);
  } catch {
    return undefined;
  }
}

const pollsOf = (router: Router): number =>
  engineOf(router)!
    .monitor.states()
    .reduce((sum, s) => sum + s.successes, 0);

async function idleRouter(cluster: Cluster, interval: number | 'default', windowMs: number): Promise<Window> {
  const router = createRouter({ ...clusterNodes(cluster), ...(interval === 'default' ? {} : { monitor: { intervalMs: interval } }) });
  try {
    await engineOf(router)!.monitor.ready;
    await waitFor('every node up', 30_000, async () => (router.topology().nodes.every((n) => n.status === 'up') ? true : undefined));
    await sleep(2 * (interval === 'default' ? 500 : interval) + 200); // past the first polls' start-up work
    const pids = Object.values(await connectionsPerNode(cluster)).flatMap((c) => c.pids);
    const server0 = cpuNanosOf(pids);
    const polls0 = pollsOf(router);
    const cpu0 = process.cpuUsage();
    const started = performance.now();
    await sleep(windowMs);
    const cpu = process.cpuUsage(cpu0);
    const seconds = (performance.now() - started) / 1000;
    const polls = pollsOf(router) - polls0;
    const server1 = cpuNanosOf(pids);
    const held = await connectionsPerNode(cluster);
    return {
      cpuPerSecond: (cpu.user + cpu.system) / seconds,
      pollsPerSecond: polls / seconds,
      serverCpuPerSecond: server0 === undefined || server1 === undefined ? undefined : (server1 - server0) / 1000 / seconds,
      connections: Object.fromEntries(Object.entries(held).map(([name, c]) => [name, { monitor: c.monitor, other: c.other }])),
    };
  } finally {
    await router.close();
  }
}

/** The baseline for a poll's cost: the poll SQL on plain pools, one per node, at `intervalMs` ±20%. */
async function plainPolls(cluster: Cluster, intervalMs: number, windowMs: number): Promise<Window> {
  const pools = nodesOf(cluster).map((node) => new pg.Pool({ connectionString: appUrl(node), max: 1 }));
  let running = true;
  let queries = 0;
  const loops = pools.map(async (pool) => {
    while (running) {
      await pool.query(POLL_SQL);
      queries++;
      await sleep(intervalMs * (0.8 + Math.random() * 0.4));
    }
  });
  try {
    await sleep(2 * intervalMs + 200);
    const queries0 = queries;
    const cpu0 = process.cpuUsage();
    const started = performance.now();
    await sleep(windowMs);
    const cpu = process.cpuUsage(cpu0);
    const seconds = (performance.now() - started) / 1000;
    return { cpuPerSecond: (cpu.user + cpu.system) / seconds, pollsPerSecond: (queries - queries0) / seconds };
  } finally {
    running = false;
    await Promise.all(loops);
    await Promise.all(pools.map((p) => p.end()));
  }
}

async function monitorConnectionsLeft(cluster: Cluster): Promise<number> {
  const count = async () => Object.values(await connectionsPerNode(cluster)).reduce((sum, c) => sum + c.monitor, 0);
  const deadline = Date.now() + 2000;
  let left = await count();
  while (left > 0 && Date.now() < deadline) {
    await sleep(100);
    left = await count();
  }
  return left;
}

async function baseline(windowMs: number): Promise<Window> {
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  await sleep(windowMs);
  const cpu = process.cpuUsage(cpu0);
  return { cpuPerSecond: (cpu.user + cpu.system) / ((performance.now() - started) / 1000) };
}

/** Idle-router windows at each of `intervals` against no-router windows, `rounds` rounds in rotating order. */
export async function measureIdleMonitor(
  cluster: Cluster,
  { windowMs = 5000, rounds = 3, intervals = ['default', 100] as Array<number | 'default'>, plainIntervalMs = 100 } = {},
): Promise<MonitorFigures> {
  const variants: Variant[] = ['baseline', ...intervals, 'plain-pg'];
  const windows = new Map<Variant, Window[]>(variants.map((v) => [v, []]));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < variants.length; k++) {
      const variant = variants[(k + round) % variants.length]!;
      const window =
        variant === 'baseline'
          ? await baseline(windowMs)
          : variant === 'plain-pg'
            ? await plainPolls(cluster, plainIntervalMs, windowMs)
            : await idleRouter(cluster, variant, windowMs);
      if (variant !== 'baseline' && variant !== 'plain-pg') window.afterClose = await monitorConnectionsLeft(cluster);
      windows.get(variant)!.push(window);
    }
  }
  const base = windows.get('baseline')!;
  const net = (runs: Window[]) => median(runs.map((w, round) => w.cpuPerSecond - base[round]!.cpuPerSecond));
  const idle = intervals.map((interval): IdleRouterFigures => {
    const runs = windows.get(interval)!;
    const cpu = net(runs);
    const polls = median(runs.map((w) => w.pollsPerSecond!));
    const server = runs.map((w) => w.serverCpuPerSecond);
    return {
      intervalMs: interval,
      cpuMicrosPerSecond: Math.round(cpu),
      cpuPercentOfCore: fixed(cpu / 10_000, 2),
      pollsPerSecond: fixed(polls),
      cpuMicrosPerPoll: Math.round(cpu / polls),
      serverCpuMicrosPerSecond: server.every((s) => s !== undefined) ? Math.round(median(server as number[])) : undefined,
      connections: runs.at(-1)!.connections!,
      monitorConnectionsAfterClose: Math.max(...runs.map((w) => w.afterClose!)),
      rawCpuMicrosPerSecond: runs.map((w) => Math.round(w.cpuPerSecond)),
    };
  });
  const plainRuns = windows.get('plain-pg')!;
  const plainCpu = net(plainRuns);
  const plainQueries = median(plainRuns.map((w) => w.pollsPerSecond!));
  const plainPerQuery = plainCpu / plainQueries;
  const fast = idle.find((f) => f.intervalMs === plainIntervalMs);
  return {
    replicas: cluster.replicas.length,
    windowMs,
    rounds,
    baselineCpuMicrosPerSecond: Math.round(median(base.map((w) => w.cpuPerSecond))),
    idle,
    plainPg: {
      intervalMs: plainIntervalMs,
      queriesPerSecond: fixed(plainQueries),
      cpuMicrosPerSecond: Math.round(plainCpu),
      cpuMicrosPerQuery: Math.round(plainPerQuery),
    },
    pollCostRatio: fast ? fixed(fast.cpuMicrosPerPoll / plainPerQuery, 2) : Number.NaN,
  };
}
