// One burst of the scale benchmark's part 4 (test/bench/scale-sessions.ts): `scopes` scope
// functions started at once and all awaited, with wall time, peak heap, errors and the most
// connections each pool had open; for a router, also what `router.topology()` counted.
import type pg from 'pg';
import type { Router } from '../../lib/index.js';
import type { MonitorView, Sample } from '../../lib/monitor-view.js';
import { fixed, median, memoryAfterGc } from './scale-util.js';

export type Pools = Record<string, pg.Pool>;

export interface Burst {
  wallMs: number;
  /** Peak `heapUsed` sampled every 5 ms during the burst, over `heapUsed` after a full GC before it. */
  peakHeapMB: number;
  errors: number;
  errorMessages: string[];
  /** `max` of each node's pool, and the most connections it had open at once during the burst. */
  pools: Record<string, { max: number; peak: number }>;
}

export interface RoutedBurst extends Burst {
  /**
   * `served` minus the statements issued: a statement that waited past its pool's connect bound
   * (the router's own, 2 s by default, where pg.Pool would wait on) is counted on that node, then
   * runs elsewhere (or fails). 0 when no wait reached the bound.
   */
  spilled: number;
  /** `served` per node in this burst (writes included). */
  served: Record<string, number>;
  /** The router's live checks of replicas in this burst. */
  liveChecks: number;
}

/** Medians (wall, heap) and totals (errors) of bursts of one side. */
export interface BurstSide {
  wallMs: number;
  scopesPerSecond: number;
  peakHeapMB: number;
  /** Failed scopes over every round (the figure is only meaningful at 0). */
  errors: number;
  errorMessages: string[];
  pools: Record<string, { max: number; peak: number }>;
}

/** Runs `scopes` scope functions at once. */
export async function burst(scopes: number, run: (i: number) => Promise<unknown>, pools: Pools): Promise<Burst> {
  const baseline = (await memoryAfterGc()).heapUsed;
  let peakHeap = baseline;
  const peak = Object.fromEntries(Object.keys(pools).map((name) => [name, 0]));
  const sampler = setInterval(() => {
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    for (const [name, pool] of Object.entries(pools)) peak[name] = Math.max(peak[name]!, pool.totalCount);
  }, 5);
  const started = performance.now();
  const outcomes = await Promise.allSettled(Array.from({ length: scopes }, (_, i) => run(i)));
  const wallMs = performance.now() - started;
  clearInterval(sampler);
  const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
  return {
    wallMs,
    peakHeapMB: fixed((peakHeap - baseline) / 2 ** 20),
    errors: failures.length,
    errorMessages: [...new Set(failures.map((f) => String(f.reason?.message ?? f.reason)))].slice(0, 5),
    pools: Object.fromEntries(Object.entries(pools).map(([name, pool]) => [name, { max: pool.options.max ?? 10, peak: peak[name]! }])),
  };
}

/** {@link burst} through `router`, whose scopes issue `statements` statements in all. */
export async function routedBurst(
  router: Router,
  pools: Pools,
  scopes: number,
  statements: number,
  run: (i: number) => Promise<unknown>,
): Promise<RoutedBurst> {
  const before = router.topology();
  const result = await burst(scopes, run, pools);
  const after = router.topology();
  const served = Object.fromEntries(after.nodes.map((node, k) => [node.name, node.served - before.nodes[k]!.served]));
  const spilled = Object.values(served).reduce((sum, v) => sum + v, 0) - statements;
  return { ...result, spilled, served, liveChecks: after.counters.liveChecks - before.counters.liveChecks };
}

export function summary(bursts: Burst[], scopes: number): BurstSide {
  const wallMs = median(bursts.map((b) => b.wallMs));
  const pools: BurstSide['pools'] = {};
  for (const name of Object.keys(bursts[0]!.pools)) {
    pools[name] = { max: bursts[0]!.pools[name]!.max, peak: Math.max(...bursts.map((b) => b.pools[name]!.peak)) };
  }
  return {
    wallMs: Math.round(wallMs),
    scopesPerSecond: Math.round(scopes / (wallMs / 1000)),
    peakHeapMB: median(bursts.map((b) => b.peakHeapMB)),
    errors: bursts.reduce((sum, b) => sum + b.errors, 0),
    errorMessages: [...new Set(bursts.flatMap((b) => b.errorMessages))].slice(0, 5),
    pools,
  };
}

/** Wraps `monitor.sample` to count calls and distinct answers (one per round trip: callers sharing one get the same object) per node. */
export function countSamples(monitor: MonitorView): Record<string, { calls: number; roundTrips: number }> {
  const counts: Record<string, { calls: number; roundTrips: number }> = {};
  const answers = new WeakSet<Sample>();
  const sample = monitor.sample.bind(monitor);
  monitor.sample = (name, notBefore) => {
    const count = (counts[name] ??= { calls: 0, roundTrips: 0 });
    count.calls++;
    const answer = sample(name, notBefore);
    void answer.then((s) => {
      if (answers.has(s)) return;
      answers.add(s);
      count.roundTrips++;
    });
    return answer;
  };
  return counts;
}
