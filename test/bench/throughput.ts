// BENCH_SECTIONS=throughput npm run bench:routing — what the router costs at full speed: a
// primary and two caught-up replicas, 32 request loops with no pause, each request one session
// scope (router.withSession) that reads a row by primary key, or (10 %) updates it and reads it
// back in the same scope. Variants, interleaved in a rotating order each round, medians:
//  - random replica: raw pg.Pools, writes on the primary, reads on a random replica, no consistency
//    (the baseline: what reading replicas costs with no router at all);
//  - ours: the router at 'session', maxWaitMs 0;
//  - oracle: test/bench/oracle.ts (its live replay reads before every read are its cost).
// Same pool size per node everywhere. Writes docs/throughput.{json,md}.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { createRouter, type Router } from '../../lib/index.js';
import { startCluster, type Cluster } from '../../lib/testing/index.js';
import { asAppRole, createAppRole } from '../helpers/app-role.js';
import { directTarget, seedStatements, startWorkload, type Outcome, type Target } from '../workload/driver.js';
import { SELECT, UPDATE } from '../workload/http-target.js';
import { installDecisionMeter, type DecisionMeter } from './decisions.js';
import { oracleTarget } from './oracle.js';
import { startProfile } from './profile.js';
import { median, rotatingRounds, summarize, type Cell } from './rounds.js';
import { libState, writeRun } from './run-info.js';
import { summarizeRun } from './summary.js';

const LOOPS = Number(process.env.BENCH_THROUGHPUT_LOOPS ?? 32);
const SECONDS = Number(process.env.BENCH_THROUGHPUT_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_THROUGHPUT_ROUNDS ?? 5);
const POOL_MAX = Number(process.env.BENCH_THROUGHPUT_POOL ?? 20);
const WARM_MS = 500;
/** Share of requests that write (then read back); BENCH_THROUGHPUT_WRITES=0 isolates the read path. */
const WRITE_SHARE = Number(process.env.BENCH_THROUGHPUT_WRITES ?? 0.1);
/** The router's monitor interval (as in the strategies section). */
const MONITOR_MS = Number(process.env.BENCH_MONITOR_MS ?? 100);
/** BENCH_REASONS=1: count ours' routing decisions by reason (a meter provider; costs some CPU per statement). */
const REASONS = process.env.BENCH_REASONS === '1';

const ALL = ['random replica', 'ours', 'oracle'] as const;
type Variant = (typeof ALL)[number];
/** BENCH_THROUGHPUT_VARIANTS=ours (e.g. to profile one); the ratio needs `random replica`. */
const VARIANTS = ALL.filter((v) => (process.env.BENCH_THROUGHPUT_VARIANTS ?? ALL.join(',')).split(',').includes(v));

/**
 * The whole machine's busy CPU time so far, in µs (Linux `/proc/stat`, all cores; undefined
 * elsewhere): with PostgreSQL on the same cores, a variant's throughput is bounded by it.
 */
function machineBusyMicros(): number | undefined {
  try {
    const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    return ((user! + nice! + system! + irq! + softirq! + steal!) * 1e6) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The baseline: plain pools, writes on the primary, each read on a replica picked at random. */
function randomReplicaTarget(cluster: Cluster): Target & { close(): Promise<void> } {
  const pool = (url: string) => new pg.Pool({ connectionString: asAppRole(url), max: POOL_MAX });
  const primary = pool(cluster.primary.connectionString);
  const replicas = cluster.replicas.map((r) => pool(r.connectionString));
  const run = async (p: pg.Pool, text: string, row: string): Promise<Outcome> => {
    const { rows } = await p.query<{ v: number; port: number }>(text, [row]);
    return { version: rows[0]!.v, port: rows[0]!.port };
  };
  const replica = () => replicas[Math.floor(Math.random() * replicas.length)]!;
  return {
    transport: 'direct',
    write: (_session, row) => run(primary, UPDATE, row),
    read: (_session, row) => run(replica(), SELECT, row),
    async writeAndRead(_session, row) {
      const write = await run(primary, UPDATE, row);
      const writtenAt = performance.now();
      const readAt = performance.now();
      return { write, writtenAt, read: await run(replica(), SELECT, row), readAt };
    },
    close: async () => void (await Promise.all([primary, ...replicas].map((p) => p.end()))),
  };
}

async function runCell(cluster: Cluster, variant: Variant, meter: DecisionMeter | undefined, label: string): Promise<Cell> {
  let router: Router | undefined;
  let target: Target & { close?: () => Promise<void> };
  const oracle = variant === 'oracle' ? oracleTarget(cluster, { max: POOL_MAX, positionMax: LOOPS }) : undefined; // checks never queue
  if (variant === 'random replica') target = randomReplicaTarget(cluster);
  else if (oracle) target = oracle;
  else {
    router = createRouter({
      primary: { connectionString: asAppRole(cluster.primary.connectionString), max: POOL_MAX },
      replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: asAppRole(r.connectionString), max: POOL_MAX })),
      consistency: 'session',
      monitor: { intervalMs: MONITOR_MS },
      logger: false,
    });
    target = directTarget(router);
    await router.query('select 1');
    await sleep(300);
  }
  const names = new Map([[cluster.primary.port, 'primary'], ...cluster.replicas.map((r) => [r.port, r.name] as const)]);
  const workload = () =>
    startWorkload({
      targets: [{ target, sessions: LOOPS }],
      nodeName: (port) => names.get(port) ?? '?',
      writeShare: WRITE_SHARE,
      readBack: 'same-scope',
      backoffMs: 5,
    });
  // Warm-up: every pool connection opened, the code paths compiled; not measured.
  const warm = workload();
  await sleep(WARM_MS);
  await warm.stop();
  await cluster.waitForReplicas(); // the next loops start caught up

  const countersBefore = router && { ...router.topology().counters };
  const oracleBefore = oracle && { ...oracle.stats };
  const decisionsBefore = meter && router ? await meter.read() : undefined;
  const stopProfile = await startProfile(label);
  const cpuBefore = process.cpuUsage();
  const machineBefore = machineBusyMicros();
  const load = workload();
  await sleep(SECONDS * 1000);
  const result = await load.stop();
  const cpu = process.cpuUsage(cpuBefore);
  const machine = machineBefore === undefined ? undefined : machineBusyMicros()! - machineBefore;
  await stopProfile();
  const counters = router?.topology().counters;
  const decisions = decisionsBefore ? await meter!.since(decisionsBefore) : {};
  await router?.close();
  await target.close?.();

  const summary = summarizeRun(result);
  // Every request has exactly one read (a write's read-back is in its request).
  const requests = summary.reads + summary.failures;
  const perRequest = (n: number, digits = 3) => Number((n / Math.max(1, requests)).toFixed(digits));
  return {
    variant,
    requests,
    requestsPerSecond: Math.round(requests / (result.durationMs / 1000)),
    cpuMicrosPerRequest: perRequest(cpu.user + cpu.system, 1),
    cpuSystemMicrosPerRequest: perRequest(cpu.system, 1),
    machineCpuMicrosPerRequest: machine === undefined ? 'n/a' : perRequest(machine, 1),
    positionReadsPerRequest: counters
      ? perRequest(counters.positionReads - countersBefore!.positionReads)
      : oracle
        ? perRequest(oracle.stats.positionReads - oracleBefore!.positionReads)
        : 0,
    liveChecksPerRequest: counters
      ? perRequest(counters.liveChecks - countersBefore!.liveChecks)
      : oracle
        ? perRequest(oracle.stats.replayChecks - oracleBefore!.replayChecks)
        : 0,
    requestP50ms: summary.readP50ms,
    ...summary,
    ...Object.fromEntries(Object.entries(decisions).map(([k, v]) => [`decision ${k}`, v])),
  };
}

function table(results: Cell[], ratios: Record<string, number>): string {
  const head =
    '| variant | requests/s | / random replica | CPU µs / request (of which system) | position reads / request | live checks / request | reads on replicas | RYW | MR | failures |\n|---|---|---|---|---|---|---|---|---|---|';
  const rows = results.map(
    (r) =>
      `| ${r.variant} | ${r.requestsPerSecond} | ${ratios[String(r.variant)]} | ${r.cpuMicrosPerRequest} (${r.cpuSystemMicrosPerRequest}) | ${r.positionReadsPerRequest} | ${r.liveChecksPerRequest} | ${(Number(r.replicaShare) * 100).toFixed(1)} % | ${r.rywViolations} | ${r.mrViolations} | ${r.failures} |`,
  );
  return `${head}\n${rows.join('\n')}\n`;
}

export async function runThroughput(): Promise<void> {
  const lib = libState();
  const meter = REASONS ? installDecisionMeter() : undefined;
  const cluster = await startCluster({ replicas: 2 });
  try {
    const shape = { targets: [{ target: { transport: 'direct' as const }, sessions: LOOPS }] };
    for (const statement of seedStatements(shape)) await cluster.primary.query(statement);
    await createAppRole(cluster, ['select, update on counters']);
    for (const variant of VARIANTS) await runCell(cluster, variant, meter, `warm-up ${variant}`); // not counted
    const runs = await rotatingRounds(VARIANTS, ROUNDS, (variant, round) => runCell(cluster, variant, meter, `${variant} ${round}`));
    const results = VARIANTS.map((v) => summarize(runs.get(v)!, /Violations$|^failures$|^decision /));
    // Ratios per round (the variants of a round ran side by side), then their median.
    const ratioOf = (variant: Variant) => {
      const base = runs.get('random replica');
      if (!base) return NaN;
      const values = runs.get(variant)!.map((c, i) => Number(c.requestsPerSecond) / Number(base[i]!.requestsPerSecond));
      return Number(median(values).toFixed(3));
    };
    const ratios = Object.fromEntries(VARIANTS.map((v) => [v, ratioOf(v)]));
    console.log(table(results, ratios));
    if (process.env.BENCH_NO_WRITE !== '1') {
      const base = new URL(`../../docs/throughput${WRITE_SHARE === 0.1 ? '' : `-writes${WRITE_SHARE}`}`, import.meta.url).pathname;
      const setup = {
        writeShare: WRITE_SHARE,
        loops: LOOPS,
        secondsPerCell: SECONDS,
        rounds: ROUNDS,
        poolMax: POOL_MAX,
        monitorMs: MONITOR_MS,
      };
      writeRun(
        base,
        lib,
        { ...setup, ratioToRandomReplica: ratios, results },
        (date, where) =>
          `Throughput (\`${WRITE_SHARE === 0.1 ? '' : `BENCH_THROUGHPUT_WRITES=${WRITE_SHARE} `}BENCH_SECTIONS=throughput npm run bench:routing\`, ${date}): primary + 2 caught-up replicas, ${LOOPS} request loops without pause, each request one session scope reading a row by key or (${WRITE_SHARE * 100} %) updating it and reading it back; pools of ${POOL_MAX} per node; ${SECONDS} s per cell after ${WARM_MS} ms of warm-up, ${ROUNDS} rounds in rotating order, medians (ratios: median of the per-round ratios; violations: sums). CPU: this process's (process.cpuUsage), which also runs the load loops. ${where}`,
        table(results, ratios),
      );
    }
  } finally {
    await cluster.stop();
    await meter?.shutdown();
  }
}
