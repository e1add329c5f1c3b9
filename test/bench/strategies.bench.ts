// npm run bench:routing — what each way of reading from replicas costs and gets wrong, side by side
// on one cluster: N concurrent sessions doing writes and reads of their own rows and shared rows,
// every operation recorded, and a history checker counting read-your-writes and monotonic-read
// violations. Writes docs/strategies.json and docs/strategies.svg.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { createRouter, type Router } from '../../lib/index.js';
import { startCluster, type Cluster } from '../../lib/testing/index.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const WRITE_SHARE = 0.1;
const SHARED_ROWS = 10;
const DELAYS = [0, 50, 500];
/** Pause between a session's operations, in ms (a user's think time). */
const THINK_MS = Number(process.env.BENCH_THINK_MS ?? 0);

type Strategy = 'primary only' | 'random replica' | 'sticky 2 s (Rails)' | 'ours: read-your-writes' | 'ours: session' | 'ours: session, wait 50 ms';
const STRATEGIES: Strategy[] = ['primary only', 'random replica', 'sticky 2 s (Rails)', 'ours: read-your-writes', 'ours: session', 'ours: session, wait 50 ms'];

interface Op {
  session: number;
  kind: 'read' | 'write';
  row: string;
  start: number;
  end: number;
  version: number;
  node: string;
}

/** Counts read-your-writes and monotonic-read violations in one history. */
export function check(history: Op[]): { ryw: number; mr: number } {
  let ryw = 0;
  let mr = 0;
  const bySession = new Map<number, Op[]>();
  for (const op of history) bySession.set(op.session, [...(bySession.get(op.session) ?? []), op]);
  for (const ops of bySession.values()) {
    ops.sort((a, b) => a.start - b.start);
    const written = new Map<string, { end: number; version: number }[]>();
    const seen = new Map<string, { end: number; version: number }[]>();
    for (const op of ops) {
      if (op.kind === 'write') {
        written.set(op.row, [...(written.get(op.row) ?? []), { end: op.end, version: op.version }]);
        continue;
      }
      // RYW: every own write acknowledged before this read started must be visible.
      for (const w of written.get(op.row) ?? []) if (w.end < op.start && op.version < w.version) ryw++;
      // MR: every earlier read acknowledged before this one started saw at most this.
      for (const r of seen.get(op.row) ?? []) if (r.end < op.start && op.version < r.version) mr++;
      seen.set(op.row, [...(seen.get(op.row) ?? []), { end: op.end, version: op.version }]);
    }
  }
  return { ryw, mr };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function runCell(cluster: Cluster, strategy: Strategy): Promise<Record<string, number | string>> {
  const router: Router = createRouter({
    primary: { connectionString: cluster.primary.connectionString, max: 20 },
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: r.connectionString, max: 20 })),
    consistency: strategy === 'ours: read-your-writes' ? 'read-your-writes' : 'session',
    maxWaitMs: strategy === 'ours: session, wait 50 ms' ? 50 : 0,
    monitor: { intervalMs: 100 },
    logger: false,
  });
  await router.query('select 1');
  await new Promise((resolve) => setTimeout(resolve, 500));
  const ports = new Map([[cluster.primary.port, 'primary'], ...cluster.replicas.map((r) => [r.port, r.name] as const)]);
  const history: Op[] = [];
  const lastWrite = new Map<number, number>();
  const deadline = performance.now() + SECONDS * 1000;

  const level = (session: number) => {
    if (strategy === 'primary only') return 'primary' as const;
    if (strategy === 'random replica') return 'eventual' as const;
    if (strategy === 'sticky 2 s (Rails)') return performance.now() - (lastWrite.get(session) ?? -Infinity) < 2000 ? ('primary' as const) : ('eventual' as const);
    return undefined;
  };
  const op = async (session: number, fn: () => Promise<{ version: number; port: number }>, kind: Op['kind'], row: string) => {
    const start = performance.now();
    const chosen = level(session);
    const run = () => router.withSession(`s${session}`, fn);
    const result = chosen ? await router.withConsistency(chosen, run) : await run();
    const end = performance.now();
    if (kind === 'write') lastWrite.set(session, end);
    history.push({ session, kind, row, start, end, version: result.version, node: ports.get(result.port) ?? '?' });
    if (THINK_MS > 0) await new Promise((resolve) => setTimeout(resolve, THINK_MS * (0.5 + Math.random())));
  };

  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, session) => {
      const own = `own-${session}`;
      while (performance.now() < deadline) {
        const shared = `shared-${Math.floor(Math.random() * SHARED_ROWS)}`;
        if (Math.random() < WRITE_SHARE) {
          const row = Math.random() < 0.7 ? own : shared;
          await op(session, async () => {
            const { rows } = await router.query<{ v: number; port: number }>('update counters set v = v + 1 where id = $1 returning v, inet_server_port() as port', [row]);
            return { version: rows[0]!.v, port: rows[0]!.port };
          }, 'write', row);
          // read it back at once, as a page does after saving
          await op(session, async () => {
            const { rows } = await router.query<{ v: number; port: number }>('select v, inet_server_port() as port from counters where id = $1', [row]);
            return { version: rows[0]!.v, port: rows[0]!.port };
          }, 'read', row);
        } else {
          const row = Math.random() < 0.5 ? own : shared;
          await op(session, async () => {
            const { rows } = await router.query<{ v: number; port: number }>('select v, inet_server_port() as port from counters where id = $1', [row]);
            return { version: rows[0]!.v, port: rows[0]!.port };
          }, 'read', row);
        }
      }
    }),
  );
  await router.close();

  const reads = history.filter((h) => h.kind === 'read');
  const latencies = history.map((h) => h.end - h.start);
  const { ryw, mr } = check(history);
  return {
    strategy,
    opsPerSecond: Math.round(history.length / SECONDS),
    p50ms: Number(percentile(latencies, 50).toFixed(2)),
    p99ms: Number(percentile(latencies, 99).toFixed(2)),
    replicaShare: Number((reads.filter((r) => r.node !== 'primary').length / Math.max(1, reads.length)).toFixed(3)),
    rywViolations: ryw,
    mrViolations: mr,
  };
}

function chart(results: Array<Record<string, number | string>>): string {
  // Share of reads on replicas per strategy and apply delay, with violations marked.
  const width = 760;
  const rowHeight = 22;
  const left = 190;
  const lines: string[] = [];
  let y = 30;
  for (const delay of DELAYS) {
    lines.push(`<text x="10" y="${y}" font-weight="bold">apply delay ${delay} ms</text>`);
    y += 8;
    for (const r of results.filter((x) => x.delayMs === delay)) {
      y += rowHeight;
      const share = Number(r.replicaShare);
      const bad = Number(r.rywViolations) + Number(r.mrViolations);
      lines.push(`<text x="10" y="${y - 6}">${r.strategy}</text>`);
      lines.push(`<rect x="${left}" y="${y - 18}" width="${Math.round(share * (width - left - 160))}" height="14" fill="${bad ? '#c0392b' : '#2e86c1'}"/>`);
      lines.push(`<text x="${left + Math.round(share * (width - left - 160)) + 6}" y="${y - 6}">${Math.round(share * 100)}% on replicas${bad ? `, ${bad} violations` : ''}</text>`);
    }
    y += 16;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif" font-size="12">
<text x="10" y="14" font-size="14">Reads served by replicas (bar) and consistency violations (red), ${SESSIONS} sessions, ${SECONDS} s per cell</text>
${lines.join('\n')}
</svg>
`;
}

const cluster = await startCluster({ replicas: 2 });
try {
  await cluster.primary.query('create table counters (id text primary key, v int not null)');
  const ids = [...Array.from({ length: SESSIONS }, (_, i) => `own-${i}`), ...Array.from({ length: SHARED_ROWS }, (_, i) => `shared-${i}`)];
  await cluster.primary.query('insert into counters select unnest($1::text[]), 0', [ids]);
  await cluster.waitForReplicas();
  const results: Array<Record<string, number | string>> = [];
  for (const delay of DELAYS) {
    for (const replica of cluster.replicas) await replica.setApplyDelay(delay);
    for (const strategy of STRATEGIES) {
      const cell = { delayMs: delay, ...(await runCell(cluster, strategy)) };
      results.push(cell);
      console.log(JSON.stringify(cell));
    }
  }
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
  const suffix = THINK_MS > 0 ? `-think${THINK_MS}` : '';
  writeFileSync(new URL(`../../docs/strategies${suffix}.json`, import.meta.url), `${JSON.stringify({ date: new Date().toISOString(), machine, sessions: SESSIONS, secondsPerCell: SECONDS, thinkMs: THINK_MS, results }, null, 2)}\n`);
  writeFileSync(new URL(`../../docs/strategies${suffix}.svg`, import.meta.url), chart(results));
} finally {
  await cluster.stop();
}
