// Scale benchmark, part 4: bursts of session scopes started at once. A router over a primary and
// 2 replicas (memory store, default pools) runs `scopes` `withSession` scopes together, each one
// read, one in `writeEvery` after a write in the same scope. The same router with
// `connectionTimeoutMillis: 0` (pg's unbounded wait for a connection, instead of the router's
// 2 s bound) shows what that bound does; the same statements on raw pg.Pools (reads on a random
// replica, no sessions) are the baseline. Each round runs the three in a rotating order.
import pg from 'pg';
import { createRouter, type Router } from '../../lib/index.js';
import { engineOf } from '../../lib/internal.js';
import type { Cluster } from '../../lib/testing/index.js';
import { waitFor } from '../../lib/testing/processes.js';
import { burst, countSamples, routedBurst, summary, type Burst, type BurstSide, type Pools, type RoutedBurst } from './scale-burst.js';
import { appUrl, clusterNodes, fixed, median } from './scale-util.js';

const READ = 'select id, payload from bench where id = $1';
const WRITE = 'insert into scale_writes (k) values ($1)';

export type RoutedSide = BurstSide & {
  /** Wall time / the raw pools' wall time in the same round (median of rounds). */
  wallRatio: number;
  /** `served` beyond the statements issued, over every round (see RoutedBurst.spilled). */
  spilled: number;
  /** Router counters over every round (`router.topology().counters`), those that moved. */
  counters: Record<string, number>;
  /** Each burst: wall time, spilled statements, `served` per node (writes included), live checks of replicas. */
  perRound: Array<{ wallMs: number; spilled: number; served: Record<string, number>; liveChecks: number }>;
};

export interface BurstFigures {
  scopes: number;
  /** Scopes that write before their read (the rest only read). */
  writers: number;
  rounds: number;
  /** The router with its defaults. */
  routed: RoutedSide & {
    /** The monitor's live samples over every round, per node asked: calls, and round trips. */
    monitorSamples: Record<string, { calls: number; roundTrips: number }>;
  };
  /** The same router with `connectionTimeoutMillis: 0` on every node. */
  unbounded: RoutedSide;
  raw: BurstSide;
  /** One more burst of each, `beyond` times as many scopes. */
  beyond?: { scopes: number; routed: BurstOutcome; unbounded: BurstOutcome; raw: BurstOutcome };
}

interface BurstOutcome {
  wallMs: number;
  errors: number;
  errorMessages: string[];
  spilled?: number;
}

function countersOf(router: Router): Record<string, number> {
  const { tokensRejected: _, clientLevels: __, ...counters } = router.topology().counters;
  return counters;
}

function side(router: Router, bursts: RoutedBurst[], raw: Burst[], scopes: number, counters0: Record<string, number>): RoutedSide {
  const counters = Object.entries(countersOf(router))
    .map(([k, v]) => [k, v - (counters0[k] ?? 0)] as const)
    .filter(([, v]) => v !== 0);
  return {
    ...summary(bursts, scopes),
    wallRatio: fixed(median(bursts.map((b, round) => b.wallMs / raw[round]!.wallMs)), 2),
    spilled: bursts.reduce((sum, b) => sum + b.spilled, 0),
    counters: Object.fromEntries(counters),
    perRound: bursts.map((b) => ({ wallMs: Math.round(b.wallMs), spilled: b.spilled, served: b.served, liveChecks: b.liveChecks })),
  };
}

const outcome = (b: Burst | RoutedBurst): BurstOutcome => ({
  wallMs: Math.round(b.wallMs),
  errors: b.errors,
  errorMessages: b.errorMessages,
  ...('spilled' in b ? { spilled: b.spilled } : {}),
});

export async function measureBurst(
  cluster: Cluster,
  { scopes = 10_000, writeEvery = 10, rounds = 3, beyond = 2 } = {},
): Promise<BurstFigures> {
  const nodes = clusterNodes(cluster, 2);
  const unboundedNodes = {
    primary: { ...nodes.primary, connectionTimeoutMillis: 0 },
    replicas: nodes.replicas.map((r) => ({ ...r, connectionTimeoutMillis: 0 })),
  };
  const routers = { routed: createRouter(nodes), unbounded: createRouter(unboundedNodes) };
  const poolsOf = (router: Router): Pools => Object.fromEntries(engineOf(router)!.nodes.all.map((n) => [n.name, n.pool as pg.Pool]));
  // The baseline: the same pool sizes (pg's default max), pg's own unbounded wait for a connection.
  const raw: Pools = Object.fromEntries(
    [cluster.primary, ...cluster.replicas.slice(0, 2)].map((n) => [
      n.role === 'primary' ? 'primary' : n.name,
      new pg.Pool({ connectionString: appUrl(n) }),
    ]),
  );
  const rawReplicas = nodes.replicas.map((r) => raw[r.name]!);
  const writes = (i: number) => i % writeEvery === 0;
  const statements = (n: number) => n + Math.ceil(n / writeEvery);
  const id = (i: number) => (i % 1000) + 1;
  const scope = (router: Router, prefix: string) => (i: number) =>
    router.withSession(`${prefix}:${i}`, async () => {
      if (writes(i)) await router.query(WRITE, [`${prefix}:${i}`]);
      return router.query(READ, [id(i)]);
    });
  const rawScope = async (i: number) => {
    if (writes(i)) await raw.primary!.query(WRITE, [`raw:${i}`]);
    return rawReplicas[Math.floor(Math.random() * rawReplicas.length)]!.query(READ, [id(i)]);
  };
  const run = (name: 'routed' | 'unbounded', n: number, prefix: string) =>
    routedBurst(routers[name], poolsOf(routers[name]), n, statements(n), scope(routers[name], prefix));
  try {
    await cluster.waitForReplicas();
    for (const router of Object.values(routers)) {
      await engineOf(router)!.monitor.ready;
      await waitFor('replicas up and caught up', 30_000, async () =>
        router.topology().nodes.every((n) => n.status === 'up' && (n.role === 'primary' || n.lagBytes === 0)) ? true : undefined,
      );
    }
    // Connections opened, code paths warm.
    await run('routed', 500, 'warm');
    await run('unbounded', 500, 'warm');
    await burst(500, rawScope, raw);
    const counters0 = { routed: countersOf(routers.routed), unbounded: countersOf(routers.unbounded) };
    const monitorSamples = countSamples(engineOf(routers.routed)!.monitor);
    const bursts = { routed: [] as RoutedBurst[], unbounded: [] as RoutedBurst[], raw: [] as Burst[] };
    const order = ['routed', 'unbounded', 'raw'] as const;
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < order.length; k++) {
        const name = order[(k + round) % order.length]!;
        if (name === 'raw') bursts.raw.push(await burst(scopes, rawScope, raw));
        else bursts[name].push(await run(name, scopes, `r${round}`));
      }
    }
    const figures: BurstFigures = {
      scopes,
      writers: statements(scopes) - scopes,
      rounds,
      routed: { ...side(routers.routed, bursts.routed, bursts.raw, scopes, counters0.routed), monitorSamples },
      unbounded: side(routers.unbounded, bursts.unbounded, bursts.raw, scopes, counters0.unbounded),
      raw: summary(bursts.raw, scopes),
    };
    if (beyond > 1) {
      const more = scopes * beyond;
      const routed = outcome(await run('routed', more, 'beyond'));
      const unbounded = outcome(await run('unbounded', more, 'beyond'));
      figures.beyond = { scopes: more, routed, unbounded, raw: outcome(await burst(more, rawScope, raw)) };
    }
    return figures;
  } finally {
    await Promise.all([routers.routed.close(), routers.unbounded.close(), ...Object.values(raw).map((p) => p.end())]);
  }
}
