// npm run bench:routing — what each way of reading from replicas costs and gets wrong, side by side
// on one cluster: concurrent sessions (half in-process through the router, half over HTTP through
// Express) writing and reading their own rows and shared rows, handing consistency tokens to each
// other; every operation recorded, and a history checker counting read-your-writes, monotonic-read
// and token hand-off violations. Writes docs/strategies[-think<ms>].{json,svg,md}.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { createRouter, type Router } from '../../lib/index.js';
import { startCluster, type Cluster } from '../../lib/testing/index.js';
import { asAppRole, createAppRole } from '../helpers/app-role.js';
import { listen } from '../helpers/http.js';
import { directTarget, httpTarget, seedStatements, startWorkload, workloadApp, type Level, type Via } from '../workload/driver.js';
import { check, percentile, type Op } from '../workload/history.js';
import { median } from './rounds.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const DELAYS = (process.env.BENCH_DELAYS ?? '0,50,500').split(',').map(Number);
/** Pause between a session's operations, in ms (a user's think time). */
const THINK_MS = Number(process.env.BENCH_THINK_MS ?? 0);
/** `pool` (router.query) or `checkout` (a client checked out per operation, as ORMs do). */
const VIA: Via = process.env.BENCH_VIA === 'checkout' ? 'checkout' : 'pool';
const SECRET = 'strategies benchmark token secret';
/**
 * Who the routers connect as: `app` (default), a least-privilege application role with table
 * grants only, as real deployments do; `superuser`, the cluster's superuser. `BENCH_ROLES=app,superuser`
 * runs every cell as both, interleaved (so both see the same machine), and labels the strategies.
 */
type Role = 'app' | 'superuser';
const ROLES: Role[] = [
  ...new Set(
    (process.env.BENCH_ROLES ?? process.env.BENCH_ROLE ?? 'app').split(',').map((r): Role => (r === 'superuser' ? 'superuser' : 'app')),
  ),
];
const as = (role: Role, connectionString: string) => (role === 'app' ? asAppRole(connectionString) : connectionString);
/** Each cell runs this many times, strategies in a rotating order; the table shows medians (violations: sums). */
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);

type Strategy =
  'primary only' | 'random replica' | 'sticky 2 s (Rails)' | 'ours: read-your-writes' | 'ours: session' | 'ours: session, wait 50 ms';
const ALL: Strategy[] = [
  'primary only',
  'random replica',
  'sticky 2 s (Rails)',
  'ours: read-your-writes',
  'ours: session',
  'ours: session, wait 50 ms',
];
const STRATEGIES = process.env.BENCH_STRATEGIES
  ? ALL.filter((s) => process.env.BENCH_STRATEGIES!.split(',').some((f) => s.includes(f)))
  : ALL;

/** The level each operation runs at, for the strategies that are not ours. */
function levelFor(strategy: Strategy): ((session: string, lastWriteAt: number | undefined) => Level | undefined) | undefined {
  if (strategy === 'primary only') return () => 'primary';
  if (strategy === 'random replica') return () => 'eventual';
  if (strategy === 'sticky 2 s (Rails)')
    return (_s, lastWriteAt) => (performance.now() - (lastWriteAt ?? -Infinity) < 2000 ? 'primary' : 'eventual');
  return undefined;
}

type Cell = Record<string, number | string>;

async function runCell(cluster: Cluster, strategy: Strategy, role: Role): Promise<Cell> {
  const router: Router = createRouter({
    primary: { connectionString: as(role, cluster.primary.connectionString), max: 20 },
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: as(role, r.connectionString), max: 20 })),
    consistency: strategy === 'ours: read-your-writes' ? 'read-your-writes' : 'session',
    maxWaitMs: strategy === 'ours: session, wait 50 ms' ? 50 : 0,
    monitor: { intervalMs: 100 },
    tokenSecret: SECRET,
    logger: false,
  });
  const server = await listen(workloadApp(router, VIA));
  const url = server.url;
  await router.query('select 1');
  await new Promise((resolve) => setTimeout(resolve, 500));
  const names = new Map([[cluster.primary.port, 'primary'], ...cluster.replicas.map((r) => [r.port, r.name] as const)]);
  const half = Math.floor(SESSIONS / 2);
  const load = startWorkload({
    targets: [
      { target: directTarget(router, VIA), sessions: SESSIONS - half },
      { target: httpTarget(url), sessions: half },
    ],
    nodeName: (port) => names.get(port) ?? '?',
    writeShare: 0.1,
    handoffShare: 0.2,
    thinkMs: THINK_MS,
    level: levelFor(strategy),
  });
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  const { history, failures, durationMs } = await load.stop();
  const counters = router.topology().counters;
  await server.close();
  await router.close();

  const done = history.filter((h) => h.kind !== 'handoff');
  const reads = done.filter((h) => h.kind === 'read');
  const latency = (ops: Op[], p: number) =>
    Number(
      percentile(
        ops.map((o) => o.end - o.start),
        p,
      ).toFixed(2),
    );
  const direct = done.filter((o) => o.transport === 'direct');
  const http = done.filter((o) => o.transport === 'http');
  const { ryw, mr, handoff } = check(history);
  return {
    strategy: ROLES.length > 1 ? `${strategy} [${role}]` : strategy,
    role,
    opsPerSecond: Math.round(done.length / (durationMs / 1000)),
    p50ms: latency(done, 50),
    p99ms: latency(done, 99),
    directP50ms: latency(direct, 50),
    directP99ms: latency(direct, 99),
    httpP50ms: latency(http, 50),
    httpP99ms: latency(http, 99),
    replicaShare: Number((reads.filter((r) => r.node !== 'primary').length / Math.max(1, reads.length)).toFixed(3)),
    rywViolations: ryw,
    mrViolations: mr,
    handoffViolations: handoff,
    handoffs: history.filter((h) => h.kind === 'handoff').length,
    failures: failures.length,
    // The router's own work per operation (ours only; the others run at forced levels).
    positionReadsPerOp: Number((counters.positionReads / Math.max(1, done.length)).toFixed(3)),
    liveChecksPerOp: Number((counters.liveChecks / Math.max(1, done.length)).toFixed(3)),
  };
}

function chart(results: Cell[], delays: number[], sessions: number, thinkMs: number, seconds: number): string {
  // Share of reads on replicas per strategy and apply delay. Red: read-your-writes or hand-off
  // violations (a user's own change, or one handed to them, not visible); orange: only
  // monotonic-read violations (which `read-your-writes` does not promise to avoid).
  const width = 920;
  const rowHeight = 22;
  const left = 190;
  const barMax = 420;
  const lines: string[] = [];
  let y = 42;
  for (const delay of delays) {
    lines.push(`<text x="10" y="${y}" font-weight="bold">apply delay ${delay} ms</text>`);
    y += 8;
    for (const r of results.filter((x) => x.delayMs === delay)) {
      y += rowHeight;
      const share = Number(r.replicaShare);
      const lost = Number(r.rywViolations) + Number(r.handoffViolations);
      const mr = Number(r.mrViolations);
      const parts = [`${Math.round(share * 100)}% on replicas`];
      if (Number(r.rywViolations)) parts.push(`${r.rywViolations} RYW`);
      if (Number(r.handoffViolations)) parts.push(`${r.handoffViolations} hand-off`);
      if (mr) parts.push(`${mr} MR`);
      lines.push(`<text x="10" y="${y - 6}">${r.strategy}</text>`);
      lines.push(
        `<rect x="${left}" y="${y - 18}" width="${Math.round(share * barMax)}" height="14" fill="${lost ? '#c0392b' : mr ? '#e67e22' : '#2e86c1'}"/>`,
      );
      lines.push(
        `<text x="${left + Math.round(share * barMax) + 6}" y="${y - 6}">${parts.join(', ')}${lost || mr ? ' violations' : ''}</text>`,
      );
    }
    y += 16;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="14" font-size="14">Reads served by replicas; red: read-your-writes or hand-off violations, orange: monotonic-read only. ${sessions} sessions${thinkMs ? `, ${thinkMs} ms think time` : ''}, ${seconds} s per cell</text>
${lines.join('\n')}
</svg>
`;
}

function table(results: Cell[]): string {
  const head =
    '| apply delay | strategy | ops/s | p50 / p99 ms (direct) | p50 / p99 ms (HTTP) | reads on replicas | RYW | MR | hand-off | live checks / op |\n|---|---|---|---|---|---|---|---|---|---|';
  const rows = results.map(
    (r) =>
      `| ${r.delayMs} ms | ${r.strategy} | ${r.opsPerSecond} | ${r.directP50ms} / ${r.directP99ms} | ${r.httpP50ms} / ${r.httpP99ms} | ${(Number(r.replicaShare) * 100).toFixed(1)} % | ${r.rywViolations} | ${r.mrViolations} | ${r.handoffViolations} | ${r.liveChecksPerOp} |`,
  );
  return `${head}\n${rows.join('\n')}\n`;
}

const suffix = (THINK_MS > 0 ? `-think${THINK_MS}` : '') + (VIA === 'checkout' ? '-checkout' : '');
const base = new URL(`../../docs/strategies${suffix}`, import.meta.url).pathname;

if (process.env.BENCH_CHART_ONLY === '1') {
  // Redraw the chart and table from the last results, without running anything.
  const saved = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as {
    sessions: number;
    thinkMs: number;
    secondsPerCell: number;
    results: Cell[];
  };
  const delays = [...new Set(saved.results.map((r) => Number(r.delayMs)))];
  writeFileSync(`${base}.svg`, chart(saved.results, delays, saved.sessions, saved.thinkMs, saved.secondsPerCell));
  writeFileSync(`${base}.md`, table(saved.results));
  process.exit(0);
}

/**
 * Which sections run: `strategies` (this file), `chaos` (test/bench/chaos.ts: stalling replicas,
 * against the oracle), `throughput` (test/bench/throughput.ts: requests/s against raw pools).
 * `BENCH_SECTIONS=chaos,throughput`; default all.
 */
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'strategies,chaos,throughput').split(',').map((s) => s.trim()));

async function runStrategies(): Promise<void> {
  const cluster = await startCluster({ replicas: 2 });
  try {
    const half = Math.floor(SESSIONS / 2);
    const workload = {
      targets: [
        { target: { transport: 'direct' as const }, sessions: SESSIONS - half },
        { target: { transport: 'http' as const }, sessions: half },
      ],
    };
    for (const statement of seedStatements(workload)) await cluster.primary.query(statement);
    if (ROLES.includes('app')) await createAppRole(cluster, ['select, update on counters']);
    await cluster.waitForReplicas();
    await runCell(cluster, 'ours: session', ROLES[0]!); // warm-up (JIT, connections, caches), not counted
    const results: Cell[] = [];
    for (const delay of DELAYS) {
      for (const replica of cluster.replicas) await replica.setApplyDelay(delay);
      const variants = STRATEGIES.flatMap((strategy) => ROLES.map((role) => ({ strategy, role })));
      const runs = new Map<(typeof variants)[number], Cell[]>(variants.map((v) => [v, []]));
      for (let repeat = 0; repeat < REPEATS; repeat++) {
        const order = variants.map((_, i) => variants[(i + repeat * ROLES.length) % variants.length]!);
        for (const variant of order) {
          const run = await runCell(cluster, variant.strategy, variant.role);
          runs.get(variant)!.push(run);
          console.log(JSON.stringify({ delayMs: delay, repeat, ...run }));
        }
      }
      for (const variant of variants) {
        const cells = runs.get(variant)!;
        const cell: Cell = { delayMs: delay, strategy: cells[0]!.strategy!, role: variant.role, repeats: cells.length };
        for (const key of Object.keys(cells[0]!)) {
          if (key === 'strategy' || key === 'role') continue;
          const values = cells.map((c) => Number(c[key]));
          cell[key] = /Violations$|^handoffs$|^failures$/.test(key) ? values.reduce((a, b) => a + b, 0) : median(values);
        }
        results.push(cell);
      }
    }
    if (process.env.BENCH_NO_WRITE !== '1') {
      const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
      writeFileSync(
        `${base}.json`,
        `${JSON.stringify({ date: new Date().toISOString(), machine, roles: ROLES, sessions: SESSIONS, secondsPerCell: SECONDS, repeats: REPEATS, thinkMs: THINK_MS, results }, null, 2)}\n`,
      );
      writeFileSync(`${base}.svg`, chart(results, DELAYS, SESSIONS, THINK_MS, SECONDS));
      writeFileSync(`${base}.md`, table(results));
    }
  } finally {
    await cluster.stop();
  }
}

if (SECTIONS.has('strategies')) await runStrategies();
if (SECTIONS.has('chaos')) await (await import('./chaos.js')).runChaos();
if (SECTIONS.has('throughput')) await (await import('./throughput.js')).runThroughput();
