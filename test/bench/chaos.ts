// BENCH_SECTIONS=chaos npm run bench:routing — replicas that stall and lag: a primary and two
// replicas, r2 always applying 300 ms late (recovery_min_apply_delay), and every 700 ms one step
// of pause r1, resume r1, pause r2, resume r2, … (from the first step at each cell's start). 40
// in-process sessions, 25 % writes (each read back at once), 20 % of writes handing a token to
// another session. Strategies: the oracle (test/bench/oracle.ts: the most any correct router can
// read on replicas), ours at 'session' with maxWaitMs 0, and with 20. Writes docs/strategies-chaos.{json,md}.
import { writeFileSync } from 'node:fs';
import { chaosChart } from './chaos-chart.js';
import { createRouter, type Router } from '../../lib/index.js';
import { startCluster, type Cluster, type ReplicaHandle } from '../../lib/testing/index.js';
import { asAppRole, createAppRole } from '../helpers/app-role.js';
import { directTarget, seedStatements, startWorkload, type Target } from '../workload/driver.js';
import { installDecisionMeter, type DecisionCounts, type DecisionMeter } from './decisions.js';
import { oracleTarget } from './oracle.js';
import { rotatingRounds, summarize, type Cell } from './rounds.js';
import { libState, writeRun } from './run-info.js';
import { summarizeRun } from './summary.js';

const SESSIONS = Number(process.env.BENCH_CHAOS_SESSIONS ?? 40);
const SECONDS = Number(process.env.BENCH_CHAOS_SECONDS ?? 4);
const REPEATS = Number(process.env.BENCH_CHAOS_REPEATS ?? 3);
/** Mean pause between a session's operations, in ms (default 0: as fast as they go). */
const THINK_MS = Number(process.env.BENCH_CHAOS_THINK_MS ?? 0);
const STEP_MS = 700;
const SLOW_APPLY_MS = 300;
/** The router's monitor interval (as in the strategies section). */
const MONITOR_MS = Number(process.env.BENCH_MONITOR_MS ?? 100);

const STRATEGIES = ['oracle', 'ours: session', 'ours: session, wait 20 ms'] as const;
type Strategy = (typeof STRATEGIES)[number];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The workload phase after each step of {@link startStalls}. */
const PHASES = ['r1 paused', 'both replaying', 'r2 paused', 'both replaying'];

/**
 * Steps every `stepMs` until stopped: pause r1, resume r1, pause r2, resume r2, …, telling
 * `onStep` the phase each step begins (once it took effect); stop resumes all.
 */
function startStalls(replicas: readonly ReplicaHandle[], stepMs: number, onStep: (phase: string) => void): { stop(): Promise<void> } {
  let stopping = false;
  const started = performance.now();
  const loop = (async () => {
    for (let step = 0; !stopping; step++) {
      const replica = replicas[Math.floor(step / 2) % replicas.length]!;
      await (step % 2 === 0 ? replica.pauseReplay() : replica.resumeReplay());
      onStep(PHASES[step % PHASES.length]!);
      const next = started + (step + 1) * stepMs;
      while (!stopping && performance.now() < next) await sleep(Math.min(20, next - performance.now()));
    }
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
      for (const replica of replicas) await replica.resumeReplay();
    },
  };
}

/**
 * Ours' decisions (role:reason) and live checks per phase: snapshots at each step, the counts
 * between two snapshots credited to the phase that was on.
 */
function phaseTracker(meter: DecisionMeter, router: Router | undefined, first: DecisionCounts) {
  const counts: Record<string, number> = {};
  let phase = 'before';
  let last = first;
  let lastChecks = router?.topology().counters.liveChecks ?? 0;
  let chain = Promise.resolve();
  const mark = (next: string) => {
    const checks = router?.topology().counters.liveChecks ?? 0;
    const ended = phase;
    counts[`${ended} liveChecks`] = (counts[`${ended} liveChecks`] ?? 0) + checks - lastChecks;
    lastChecks = checks;
    phase = next;
    chain = chain.then(async () => {
      const now = await meter.read();
      for (const [k, v] of Object.entries(now))
        if (v - (last[k] ?? 0) > 0) counts[`${ended} ${k}`] = (counts[`${ended} ${k}`] ?? 0) + v - (last[k] ?? 0);
      last = now;
    });
  };
  return { mark, done: async () => (mark('end'), await chain, counts) };
}

async function runCell(cluster: Cluster, strategy: Strategy, meter: DecisionMeter): Promise<Cell> {
  let router: Router | undefined;
  let target: Target;
  const oracle = strategy === 'oracle' ? oracleTarget(cluster, { positionMax: SESSIONS }) : undefined; // checks never queue
  if (oracle) target = oracle;
  else {
    router = createRouter({
      primary: { connectionString: asAppRole(cluster.primary.connectionString), max: 20 },
      replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: asAppRole(r.connectionString), max: 20 })),
      consistency: 'session',
      maxWaitMs: strategy === 'ours: session, wait 20 ms' ? 20 : 0,
      monitor: { intervalMs: MONITOR_MS },
      tokenSecret: 'chaos benchmark token secret',
      logger: false,
    });
    target = directTarget(router);
    await router.query('select 1');
    await sleep(500);
  }
  const names = new Map([[cluster.primary.port, 'primary'], ...cluster.replicas.map((r) => [r.port, r.name] as const)]);
  const before = await meter.read();
  const load = startWorkload({
    targets: [{ target, sessions: SESSIONS }],
    nodeName: (port) => names.get(port) ?? '?',
    writeShare: 0.25,
    handoffShare: 0.2,
    thinkMs: THINK_MS,
  });
  const tracker = phaseTracker(meter, router, before);
  const stalls = startStalls(cluster.replicas, STEP_MS, (phase) => (load.phase(phase), tracker.mark(phase)));
  await sleep(SECONDS * 1000);
  const result = await load.stop();
  const perPhase = router ? await tracker.done() : {};
  await stalls.stop();
  const summary = summarizeRun(result);
  // Reads on replicas by the phase they started in (the first, before any step took effect, left out).
  const byPhase = Object.fromEntries(
    [...new Set(PHASES)].flatMap((phase) => {
      const reads = result.history.filter((h) => h.kind === 'read' && h.phase === phase);
      const share = (on: (node: string) => boolean) =>
        Number((reads.filter((r) => on(r.node)).length / Math.max(1, reads.length)).toFixed(3));
      return [
        [`reads ${phase}`, reads.length],
        [`share ${phase}`, share((n) => n !== 'primary')],
        ...cluster.replicas.map((r) => [`share ${phase} on ${r.name}`, share((n) => n === r.name)]),
      ];
    }),
  );
  // The same with every step weighing the same (its 700 ms), whatever the number of reads the
  // strategy fitted into it: a slower strategy makes fewer reads per step, and more of them early
  // in a pause (when the paused replica still has what sessions need).
  const phaseWeightedShare = Number((PHASES.reduce((sum, phase) => sum + Number(byPhase[`share ${phase}`]), 0) / PHASES.length).toFixed(3));
  const decisions = await meter.since(before);
  const counters = router?.topology().counters;
  await router?.close();
  await oracle?.close();
  const perOp = (n: number) => Number((n / Math.max(1, summary.ops)).toFixed(3));
  return {
    strategy,
    ...summary,
    ...byPhase,
    phaseWeightedShare,
    positionReadsPerOp: perOp(counters?.positionReads ?? oracle!.stats.positionReads),
    liveChecksPerOp: perOp(counters?.liveChecks ?? oracle!.stats.replayChecks),
    // decisions of reads, `role:reason` (ours only), as counts summed over the repeats
    ...Object.fromEntries(Object.entries(decisions).map(([k, v]) => [`decision ${k}`, v])),
    ...Object.fromEntries(Object.entries(perPhase).map(([k, v]) => [`in ${k}`, v])),
  };
}

type Ratios = Record<string, { share: number; phaseWeighted: number }>;

function tables(results: Cell[], ratios: Ratios): string {
  const pct = (x: unknown) => `${(Number(x) * 100).toFixed(1)} %`;
  const head =
    '| strategy | reads on replicas | ours / oracle | after a write | with a token | other reads | phase-weighted | ours / oracle | RYW | MR | hand-off | ops/s | p50 / p99 ms | position reads / op | live checks / op |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|';
  const rows = results.map(
    (r) =>
      `| ${r.strategy} | ${pct(r.replicaShare)} | ${ratios[String(r.strategy)]?.share ?? '—'} | ${pct(r.afterWriteReplicaShare)} | ${pct(r.handoffReplicaShare)} | ${pct(r.plainReplicaShare)} | ${pct(r.phaseWeightedShare)} | ${ratios[String(r.strategy)]?.phaseWeighted ?? '—'} | ${r.rywViolations} | ${r.mrViolations} | ${r.handoffViolations} | ${r.opsPerSecond} | ${r.p50ms} / ${r.p99ms} | ${r.positionReadsPerOp} | ${r.liveChecksPerOp} |`,
  );
  const phases = [...new Set(PHASES)];
  const phaseTable = `| strategy | ${phases.join(' | ')} |\n|---|${phases.map(() => '---|').join('')}\n${results
    .map(
      (r) =>
        `| ${r.strategy} | ${phases.map((p) => `${pct(r[`share ${p}`])} (r1 ${pct(r[`share ${p} on r1`])}, r2 ${pct(r[`share ${p} on r2`])})`).join(' | ')} |`,
    )
    .join('\n')}\n`;
  const reasons = results.flatMap((r) => {
    const total = Object.entries(r)
      .filter(([k]) => k.startsWith('decision ') && !k.endsWith(':not-a-read'))
      .reduce((a, [, v]) => a + Number(v), 0);
    return Object.entries(r)
      .filter(([k]) => k.startsWith('decision ') && !k.endsWith(':not-a-read'))
      .sort((a, b) => Number(b[1]) - Number(a[1]))
      .map(([k, v]) => `| ${r.strategy} | ${k.slice('decision '.length)} | ${v} | ${pct(Number(v) / total)} |`);
  });
  const phaseReasons = results
    .filter((r) => r.strategy !== 'oracle')
    .flatMap((r) =>
      phases.map((p) => {
        const entries = Object.entries(r).filter(
          ([k]) => k.startsWith(`in ${p} `) && !k.endsWith(':not-a-read') && !k.endsWith(' liveChecks'),
        );
        const total = entries.reduce((a, [, v]) => a + Number(v), 0);
        const list = entries
          .sort((a, b) => Number(b[1]) - Number(a[1]))
          .map(([k, v]) => `${k.slice(`in ${p} `.length)} ${pct(Number(v) / Math.max(1, total))}`)
          .join(', ');
        return `| ${r.strategy} | ${p} | ${list} | ${(Number(r[`in ${p} liveChecks`] ?? 0) / Math.max(1, total)).toFixed(3)} |`;
      }),
    );
  return `${head}\n${rows.join('\n')}\n\n"Phase-weighted": the share in each ${STEP_MS} ms step, averaged with the steps weighing the same (the plain share weighs each step by the reads a strategy made in it).\n\nReads on replicas by phase (r2 applies ${SLOW_APPLY_MS} ms late throughout):\n\n${phaseTable}\nRouting decisions of ours' reads (all repeats; from the router's \`pgrr.routing.decisions\` metric):\n\n| strategy | role:reason | reads | share |\n|---|---|---|---|\n${reasons.join('\n')}\n\nThe same by phase, with the live checks per read decided in it:\n\n| strategy | phase | decisions | live checks / read |\n|---|---|---|---|\n${phaseReasons.join('\n')}\n`;
}

export async function runChaos(): Promise<void> {
  const lib = libState();
  const meter = installDecisionMeter(); // before any router
  const cluster = await startCluster({ replicas: 2 });
  try {
    const shape = { targets: [{ target: { transport: 'direct' as const }, sessions: SESSIONS }] };
    for (const statement of seedStatements(shape)) await cluster.primary.query(statement);
    await createAppRole(cluster, ['select, update on counters']);
    await cluster.replicas[1]!.setApplyDelay(SLOW_APPLY_MS);
    await runCell(cluster, 'ours: session', meter); // warm-up (JIT, caches), not counted
    const runs = await rotatingRounds(STRATEGIES, REPEATS, (strategy) => runCell(cluster, strategy, meter));
    const results = STRATEGIES.map((s) => summarize(runs.get(s)!, /Violations$|^failures$|^decision |^in /));
    const oracle = results[0]!;
    const ratio = (r: Cell, key: string) => Number((Number(r[key]) / Number(oracle[key])).toFixed(3));
    const ratios: Ratios = Object.fromEntries(
      results.slice(1).map((r) => [String(r.strategy), { share: ratio(r, 'replicaShare'), phaseWeighted: ratio(r, 'phaseWeightedShare') }]),
    );
    console.log(tables(results, ratios));
    if (process.env.BENCH_NO_WRITE !== '1') {
      const base = new URL(`../../docs/strategies-chaos${THINK_MS > 0 ? `-think${THINK_MS}` : ''}`, import.meta.url).pathname;
      const setup = {
        sessions: SESSIONS,
        secondsPerCell: SECONDS,
        repeats: REPEATS,
        stepMs: STEP_MS,
        slowApplyMs: SLOW_APPLY_MS,
        thinkMs: THINK_MS,
        monitorMs: MONITOR_MS,
      };
      writeRun(
        base,
        lib,
        { ...setup, shareOfOracle: ratios, results },
        (date, where) =>
          `Chaos workload (\`BENCH_SECTIONS=chaos npm run bench:routing\`, ${date}): primary + 2 replicas, r2 applying ${SLOW_APPLY_MS} ms late, every ${STEP_MS} ms one step of pause r1 / resume r1 / pause r2 / resume r2; ${SESSIONS} sessions${THINK_MS > 0 ? ` pausing ${THINK_MS} ms on average between operations` : ''}, 25 % writes (each read back at once), 20 % of writes handing a token on; ${SECONDS} s per cell, ${REPEATS} repeats in rotating order, medians (violations, decisions: sums). ${where}`,
        tables(results, ratios),
      );
      writeFileSync(`${base}.svg`, chaosChart(results, `${SESSIONS} sessions, ${THINK_MS} ms think time, ${SECONDS} s per cell`));
    }
  } finally {
    await cluster.stop();
    await meter.shutdown();
  }
}
