// The scale benchmark (issue 16): how the router behaves with many replicas, many stored
// sessions and many concurrent session scopes, against real servers it starts itself (a primary
// with 10 streaming replicas, then a primary with 2 and Redis; all stopped at the end).
// Run it with test/bench/scale.bench.ts; the parts are in test/bench/scale-*.ts.
import os from 'node:os';
import { startCluster, type Cluster } from '../../lib/testing/index.js';
import { measureDecide, type DecideFigures } from './scale-decide.js';
import { measureMemoryStore, measureRedis, type MemoryStoreFigures, type RedisFigures } from './scale-memory.js';
import { measureIdleMonitor, type MonitorFigures } from './scale-monitor.js';
import { measureBurst, type BurstFigures } from './scale-sessions.js';

export interface ScaleOptions {
  /** Replicas for the monitor part. Default 10; fewer are tried if that many cannot start. */
  replicas?: number;
  /** Length of each idle CPU window, ms. Default 5000. */
  windowMs?: number;
  /** Rounds of the idle windows and of the bursts. Default 3. */
  rounds?: number;
  /** Sessions put in the memory store. Default 100 000. */
  sessions?: number;
  /** Keys written to Redis. Default 10 000. */
  redisKeys?: number;
  /** Session scopes started at once. Default 10 000. */
  scopes?: number;
  /** One scope in this many writes before its read. Default 10 (10%). */
  writeEvery?: number;
  /** One more burst of `beyond` × `scopes` (pools past the router's connect bound); 0 to skip. Default 2. */
  beyond?: number;
}

export interface ScaleFigures {
  date: string;
  machine: string;
  /** os.loadavg() (1, 5, 15 min) at the start and the end: the machine may be shared. */
  loadAverage: { start: number[]; end: number[] };
  postgres: string;
  /** The cluster of the monitor part: replicas asked for, started, and how long start-up took. */
  monitorCluster: { requested: number; started: number; startupMs: number; failedAttempts: string[] };
  monitor: MonitorFigures;
  decide: DecideFigures;
  memoryStore: MemoryStoreFigures;
  redis: RedisFigures;
  concurrentSessions: BurstFigures;
  totalMs: number;
}

/** A cluster with `wanted` replicas, or with fewer if that many do not start (each attempt bounded at 60 s per process). */
async function startReplicas(wanted: number): Promise<{ cluster: Cluster; failed: string[] }> {
  const failed: string[] = [];
  const tries = [...new Set([wanted, Math.ceil(wanted / 2), Math.min(wanted, 2)])];
  for (const replicas of tries) {
    try {
      return { cluster: await startCluster({ replicas, appRole: true, startTimeoutMs: 60_000 }), failed };
    } catch (err) {
      failed.push(`${replicas} replicas: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(`no cluster started: ${failed.join('; ')}`);
}

const SETUP = [
  'create table bench (id int primary key, payload text)',
  "insert into bench select g, repeat('x', 100) from generate_series(1, 1000) g",
  'create table scale_writes (id bigserial primary key, k text)',
];

export async function measureScale(options: ScaleOptions = {}): Promise<ScaleFigures> {
  const began = performance.now();
  const loadStart = os.loadavg().map((l) => Number(l.toFixed(2)));
  const {
    replicas = 10,
    windowMs = 5000,
    rounds = 3,
    sessions = 100_000,
    redisKeys = 10_000,
    scopes = 10_000,
    writeEvery = 10,
    beyond = 2,
  } = options;

  const { cluster: wide, failed } = await startReplicas(replicas);
  let monitor: MonitorFigures;
  let postgres: string;
  try {
    postgres = String((await wide.primary.query('show server_version'))[0]!.server_version);
    monitor = await measureIdleMonitor(wide, { windowMs, rounds });
  } finally {
    await wide.stop();
  }
  const monitorCluster = { requested: replicas, started: monitor.replicas, startupMs: wide.startupMs, failedAttempts: failed };
  const decide = measureDecide(monitor.replicas);

  const cluster = await startCluster({ replicas: 2, redis: true, appRole: true });
  try {
    for (const statement of SETUP) await cluster.primary.query(statement);
    await cluster.waitForReplicas();
    const memoryStore = await measureMemoryStore(cluster, { sessions, rounds });
    const redis = await measureRedis(cluster, { keys: redisKeys });
    const concurrentSessions = await measureBurst(cluster, { scopes, writeEvery, rounds, beyond });
    return {
      date: new Date().toISOString(),
      machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
      loadAverage: { start: loadStart, end: os.loadavg().map((l) => Number(l.toFixed(2))) },
      postgres,
      monitorCluster,
      monitor,
      decide,
      memoryStore,
      redis,
      concurrentSessions,
      totalMs: Math.round(performance.now() - began),
    };
  } finally {
    await cluster.stop();
  }
}
