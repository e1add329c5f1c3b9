import { describe, expect, it } from 'vitest';
import { check, type Failure } from '../workload/history.js';
import { sleep, steady, summarize, type DrillReport } from './drill.js';
import { storeTrouble, waitForIdleInstances, waitForRotation, waitForStore } from './instances.js';
import {
  clock,
  explain,
  handoffsByService,
  lastReadOnAServerItDoesNotList,
  startSpreadWorkload,
  useMultiProcessDrill,
  type MultiEnv,
} from './multi-drill.js';
import { readsFailedWithoutNeedingThePrimary } from './primary-need.js';
import { drillSeed, redisChaos, seededRandom, shuffled, type RedisEvent } from './schedule.js';
import { writeDrillReport } from './report.js';

// Three router processes (two of service A, one of service B, with different replica lists)
// share Redis and a token secret, connected as the application role; HTTP sessions spread their
// requests over all three and hand tokens to each other, across services too. Meanwhile Redis is
// emptied at seeded random moments (FLUSHALL, or killed and restarted empty), and a replica,
// Redis and the primary are blackholed, a replica paused and one delayed, one after the other.
const env = useMultiProcessDrill();

/** How a blackholed primary fails an operation: pg-pool's connect timeout or pg's read timeout. */
const PRIMARY_TIMEOUT = /timeout exceeded when trying to connect|Query read timeout|Connection terminated/;
const reachedNoServer = (f: Failure) => /timeout exceeded when trying to connect/.test(f.message);

interface Fault {
  name: string;
  inject(): Promise<void>;
  heal(): Promise<void>;
  /** Whether Redis may be emptied meanwhile (not while the primary is cut off: see the report). */
  redisChaos: boolean;
}

function faults({ cluster, proxies }: MultiEnv): Fault[] {
  const [r1, r2] = cluster.replicas;
  return [
    {
      name: 'replica-blackhole',
      inject: async () => proxies.r1.setMode('blackhole'),
      heal: async () => proxies.r1.setMode('pass'),
      redisChaos: true,
    },
    {
      name: 'redis-blackhole',
      inject: async () => proxies.redis.setMode('blackhole'),
      heal: async () => proxies.redis.setMode('pass'),
      redisChaos: true,
    },
    {
      name: 'primary-blackhole',
      inject: async () => proxies.primary.setMode('blackhole'),
      heal: async () => proxies.primary.setMode('pass'),
      redisChaos: false,
    },
    { name: 'replica-paused', inject: () => r2!.pauseReplay(), heal: () => r2!.resumeReplay(), redisChaos: true },
    {
      name: 'replicas-delayed',
      inject: async () => void (await Promise.all([r1!.setApplyDelay(800), r2!.setApplyDelay(800)])),
      heal: async () => void (await Promise.all([r1!.setApplyDelay(0), r2!.setApplyDelay(0)])),
      redisChaos: true,
    },
  ];
}

describe('fault drill: router instances in separate processes, two services, Redis emptied at random moments', () => {
  it('the naive path (level eventual) under the same load and a paused replica: the checker sees stale reads', async () => {
    const e = env();
    const random = seededRandom(drillSeed() + 2000);
    await waitForRotation(e.instances);
    const load = startSpreadWorkload(e, { level: () => 'eventual' });
    const chaos = redisChaos(e.cluster.redis!, e.redis, random);
    let report: DrillReport;
    try {
      await sleep(1000);
      load.phase('replica-paused');
      await e.cluster.replicas[1]!.pauseReplay();
      // Held until the checker has seen every kind of violation (at least 2 s, at most 10 s): on a
      // busy machine the load may run slowly.
      const until = performance.now() + 10_000;
      await sleep(2000);
      while (performance.now() < until && Object.values(check(load.history)).some((n) => n === 0)) await sleep(250);
      load.phase('after-replica-paused');
      await e.cluster.replicas[1]!.resumeReplay();
      await sleep(500);
    } finally {
      await chaos.stop();
      report = summarize('multi-process-naive', await load.stop());
    }
    writeDrillReport(report, { seed: drillSeed(), redisEvents: relative(chaos.events, report) });
    expect(report.violations.ryw).toBeGreaterThan(0);
    expect(report.violations.mr).toBeGreaterThan(0);
    expect(report.violations.handoff).toBeGreaterThan(0);
  });

  it('every fault in a seeded order: no stale read, no hand-off lost, failures only where no node could serve', async () => {
    const e = env();
    const seed = drillSeed();
    const random = seededRandom(seed);
    const schedule = shuffled(faults(e), random).map((fault) => ({ ...fault, holdMs: 1500 + Math.round(random() * 1500) }));
    await waitForRotation(e.instances);
    const load = startSpreadWorkload(e);
    const chaos = redisChaos(e.cluster.redis!, e.redis, seededRandom(seed + 1000), { paused: true });
    const windows: Record<string, { from: number; to: number }> = {};
    let troubleBefore = new Map<string, number>();
    let troubleAfter = new Map<string, number>();
    let report: DrillReport;
    try {
      await steady(load, 0.6); // 30 % writes: a write read back at once may go to the primary
      chaos.resume(); // Redis is emptied from now on, once the load runs on the replicas
      for (const fault of schedule) {
        if (!fault.redisChaos) {
          // Redis quiet for a while first: every instance has stored positions and primary
          // samples again, so what the primary's loss does is not mixed with what Redis did.
          await chaos.pause();
          await waitForStore(e.instances);
          await sleep(1500);
          troubleBefore = await storeTrouble(e.instances);
        }
        load.phase(fault.name);
        const from = performance.now();
        await fault.inject();
        // Redis is emptied silently (FLUSHALL: no instance sees an error or a reconnect) again and
        // again while the fault holds (the nodes lag, the store is cut off…): what a session
        // finds missing then is what a lagging replica lacks. Restarts come at random moments.
        while (performance.now() < from + fault.holdMs - 300) {
          await sleep(200 + random() * 300);
          if (fault.redisChaos) await chaos.fire('flushall');
        }
        await sleep(Math.max(0, from + fault.holdMs - performance.now()));
        load.phase(`after-${fault.name}`);
        const to = performance.now();
        await fault.heal();
        if (!fault.redisChaos) troubleAfter = await storeTrouble(e.instances);
        windows[fault.name] = { from, to };
        await waitForRotation(e.instances);
        chaos.resume();
        await sleep(300 + random() * 700);
      }
      load.phase('recovered');
      await sleep(1500);
    } finally {
      await chaos.stop();
      report = summarize('multi-process', await load.stop());
    }
    await waitForIdleInstances(e.instances);
    const at = clock(report);
    const { history, failures } = report.result;
    const primary = windows['primary-blackhole']!;
    // A failure is expected only while the primary was cut off: a write (nowhere to go), or a
    // read whose session may have needed the primary (its last read ran there, or its write or
    // a token it holds may carry the position "primary").
    // (in flight at some moment of the cut: started before it and still waiting, or started during it)
    const inPrimaryFault = (f: Failure) => f.start <= primary.to && f.end >= primary.from;
    const whileDown = (op: { start: number; end: number }) => op.start >= primary.from && op.end <= primary.to;
    const unexplained = new Set(
      readsFailedWithoutNeedingThePrimary(history, failures, { stopping: primary.from, whileDown, reachedNoServer }),
    );
    // Known gap (see the report of issue 14): a session whose last read ran on a replica that
    // the next instance's service does not list (r1, read through A, then a request to B) is
    // covered only by a primary position sampled after that read; when the primary is cut off
    // right then, B sends the read to the primary and it fails, although r2 could serve it.
    const unknownNode = new Set([...unexplained].filter((f) => lastReadOnAServerItDoesNotList(e, history, f, primary.from - 500)));
    const expected = (f: Failure) => inPrimaryFault(f) && PRIMARY_TIMEOUT.test(f.message) && (!unexplained.has(f) || unknownNode.has(f));
    writeDrillReport(report, {
      seed,
      schedule: schedule.map(({ name, holdMs }) => ({ name, holdMs })),
      redisEvents: relative(chaos.events, report),
      handoffsByService: handoffsByService(history, e.instances),
      readsFailedAfterAReadOnAServerTheServiceDoesNotList: unknownNode.size,
      storeTroubleDuringTheCut: Object.fromEntries(
        e.instances.map((i) => [i.name, (troubleAfter.get(i.url) ?? 0) - (troubleBefore.get(i.url) ?? 0)]),
      ),
      windows: Object.fromEntries(Object.entries(windows).map(([name, w]) => [name, { from: at(w.from), to: at(w.to) }])),
      ...explain(
        report,
        failures.filter((f) => !expected(f)),
        e.instances,
      ),
    });
    expect(report.violations).toEqual({ ryw: 0, mr: 0, handoff: 0 });
    expect(failures.filter((f) => !expected(f))).toEqual([]);
    expect(chaos.events.length, 'Redis was emptied').toBeGreaterThan(0);
    expect(failures.filter((f) => f.kind === 'write').length, 'writes failed while the primary was cut off').toBeGreaterThan(0);
    for (const fault of schedule) {
      expect(report.phases[fault.name]?.reads ?? 0, `reads acknowledged during ${fault.name}`).toBeGreaterThan(0);
    }
    expect(report.phases['primary-blackhole']!.replicaReads, 'replicas served while the primary was cut off').toBeGreaterThan(0);
    expect(report.phases.recovered?.replicaReads ?? 0, 'reads back on replicas').toBeGreaterThan(0);
    expect(report.maxOperationMs).toBeLessThan(10_000);
    const crossings = handoffsByService(history, e.instances);
    expect((crossings['A→B'] ?? 0) + (crossings['B→A'] ?? 0), 'tokens handed between services').toBeGreaterThan(0);
  });
});

/** Redis events in ms since the run started (the report's clock). */
function relative(events: readonly RedisEvent[], report: DrillReport): RedisEvent[] {
  const at = clock(report);
  return events.map((e) => ({ ...e, at: at(e.at), ...(e.until ? { until: at(e.until) } : {}) }));
}
