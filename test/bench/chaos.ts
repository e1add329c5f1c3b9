// BENCH_SECTIONS=chaos npm run bench:routing — replicas that stall and lag: a primary and two
// replicas, r2 always applying 300 ms late (recovery_min_apply_delay), and every 700 ms one step
// of pause r1, resume r1, pause r2, resume r2, … (from the first step at each cell's start). 40
// in-process sessions, 25 % writes (each read back at once), 20 % of writes handing a token to
// another session. Strategies: the oracle (test/bench/oracle.ts: the most any correct router can
// read on replicas), ours at 'session' with maxWaitMs 0, and with 20. Writes docs/strategies-chaos.{json,md}.
import { writeFileSync } from 'node:fs';
import { createRouter, type Router } from '../../lib/index.js';
import { startCluster, type Cluster, type ReplicaHandle } from '../../lib/testing/index.js';
import { asAppRole, createAppRole } from '../helpers/app-role.js';
import { directTarget, seedStatements, startWorkload, type Target } from '../workload/driver.js';
import { installDecisionMeter, type DecisionCounts, type DecisionMeter } from './decisions.js';
import { oracleTarget } from './oracle.js';
import { rotatingRounds, summarize, type Cell } from './rounds.js';
import { libState, machine as machineInfo } from './run-info.js';
import { summarizeRun } from './summary.js';

const SESSIONS = Number(process.env.BENCH_CHAOS_SESSIONS ?? 40);
const SECONDS = Number(process.env.BENCH_CHAOS_SECONDS ?? 4);
const REPEATS = Number(process.env.BENCH_CHAOS_REPEATS ?? 3);
const STEP_MS = 700;
const SLOW_APPLY_MS = 300;
/** The router's monitor interval (as in the strategies section). */
const MONITOR_MS = Number(process.env.BENCH_MONITOR_MS ?? 100);

const STRATEGIES = ['oracle', 'ours: session', 'ours: session, wait 20 ms'] as const;
type Strategy = (typeof STRATEGIES)[number];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Steps every `stepMs` until stopped: pause r1, resume r1, pause r2, resume r2, …; stop resumes all. */
function startStalls(replicas: readonly ReplicaHandle[], stepMs: number): { stop(): Promise<void> } {
  let stopping = false;
  const started = performance.now();
  const loop = (async () => {
    for (let step = 0; !stopping; step++) {
      const replica = replicas[Math.floor(step / 2) % replicas.length]!;
      await (step % 2 === 0 ? replica.pauseReplay() : replica.resumeReplay());
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
  const stalls = startStalls(cluster.replicas, STEP_MS);
  const load = startWorkload({
    targets: [{ target, sessions: SESSIONS }],
    nodeName: (port) => names.get(port) ?? '?',
    writeShare: 0.25,
    handoffShare: 0.2,
  });
  await sleep(SECONDS * 1000);
  const result = await load.stop();
  await stalls.stop();
  const summary = summarizeRun(result);
  const decisions = await meter.since(before);
  const counters = router?.topology().counters;
  await router?.close();
  await oracle?.close();
  const perOp = (n: number) => Number((n / Math.max(1, summary.ops)).toFixed(3));
  return {
    strategy,
    ...summary,
    positionReadsPerOp: perOp(counters?.positionReads ?? oracle!.stats.positionReads),
    liveChecksPerOp: perOp(counters?.liveChecks ?? oracle!.stats.replayChecks),
    // decisions of reads, `role:reason` (ours only), as counts summed over the repeats
    ...Object.fromEntries(Object.entries(decisions).map(([k, v]) => [`decision ${k}`, v])),
  };
}

function tables(results: Cell[], ratios: Record<string, number>): string {
  const pct = (x: unknown) => `${(Number(x) * 100).toFixed(1)} %`;
  const head =
    '| strategy | reads on replicas | after a write | with a token | other reads | ours / oracle | RYW | MR | hand-off | ops/s | p50 / p99 ms | position reads / op | live checks / op |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|';
  const rows = results.map(
    (r) =>
      `| ${r.strategy} | ${pct(r.replicaShare)} | ${pct(r.afterWriteReplicaShare)} | ${pct(r.handoffReplicaShare)} | ${pct(r.plainReplicaShare)} | ${ratios[String(r.strategy)] ?? '—'} | ${r.rywViolations} | ${r.mrViolations} | ${r.handoffViolations} | ${r.opsPerSecond} | ${r.p50ms} / ${r.p99ms} | ${r.positionReadsPerOp} | ${r.liveChecksPerOp} |`,
  );
  const reasons = results.flatMap((r) => {
    const total = Object.entries(r)
      .filter(([k]) => k.startsWith('decision ') && !k.endsWith(':not-a-read'))
      .reduce((a, [, v]) => a + Number(v), 0);
    return Object.entries(r)
      .filter(([k]) => k.startsWith('decision ') && !k.endsWith(':not-a-read'))
      .sort((a, b) => Number(b[1]) - Number(a[1]))
      .map(([k, v]) => `| ${r.strategy} | ${k.slice('decision '.length)} | ${v} | ${pct(Number(v) / total)} |`);
  });
  return `${head}\n${rows.join('\n')}\n\nRouting decisions of ours' reads (all repeats; from the router's \`pgrr.routing.decisions\` metric):\n\n| strategy | role:reason | reads | share |\n|---|---|---|---|\n${reasons.join('\n')}\n`;
}

export async function runChaos(): Promise<void> {
  const meter = installDecisionMeter(); // before any router
  const cluster = await startCluster({ replicas: 2 });
  try {
    const shape = { targets: [{ target: { transport: 'direct' as const }, sessions: SESSIONS }] };
    for (const statement of seedStatements(shape)) await cluster.primary.query(statement);
    await createAppRole(cluster, ['select, update on counters']);
    await cluster.replicas[1]!.setApplyDelay(SLOW_APPLY_MS);
    await runCell(cluster, 'ours: session', meter); // warm-up (JIT, caches), not counted
    const runs = await rotatingRounds(STRATEGIES, REPEATS, (strategy) => runCell(cluster, strategy, meter));
    const results = STRATEGIES.map((s) => summarize(runs.get(s)!, /Violations$|^failures$|^decision /));
    const oracleShare = Number(results[0]!.replicaShare);
    const ratios = Object.fromEntries(
      results.slice(1).map((r) => [String(r.strategy), Number((Number(r.replicaShare) / oracleShare).toFixed(3))]),
    );
    console.log(tables(results, ratios));
    if (process.env.BENCH_NO_WRITE !== '1') {
      const base = new URL('../../docs/strategies-chaos', import.meta.url).pathname;
      const machine = machineInfo();
      const lib = libState();
      const setup = {
        sessions: SESSIONS,
        secondsPerCell: SECONDS,
        repeats: REPEATS,
        stepMs: STEP_MS,
        slowApplyMs: SLOW_APPLY_MS,
        monitorMs: MONITOR_MS,
      };
      writeFileSync(
        `${base}.json`,
        `${JSON.stringify({ date: new Date().toISOString(), machine, lib, ...setup, shareOfOracle: ratios, results }, null, 2)}\n`,
      );
      writeFileSync(
        `${base}.md`,
        `Chaos workload (\`BENCH_SECTIONS=chaos npm run bench:routing\`, ${new Date().toISOString().slice(0, 10)}): primary + 2 replicas, r2 applying ${SLOW_APPLY_MS} ms late, every ${STEP_MS} ms one step of pause r1 / resume r1 / pause r2 / resume r2; ${SESSIONS} sessions, 25 % writes (each read back at once), 20 % of writes handing a token on; ${SECONDS} s per cell, ${REPEATS} repeats in rotating order, medians (violations, decisions: sums). ${machine}; lib at ${lib.commit}${lib.changedLibFiles.length ? ` with uncommitted changes to ${lib.changedLibFiles.join(', ')}` : ''}.\n\n${tables(results, ratios)}`,
      );
    }
  } finally {
    await cluster.stop();
    await meter.shutdown();
  }
}
