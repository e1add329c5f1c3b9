// Scale benchmark: the routing decision alone (no I/O) over many replica views, against the
// same decision over 2 (what routing-work.ts times), alternating in rounds, medians.
import { decide, type ReplicaView, type RouteInput } from '../../lib/routing-policy.js';
import { fixed, median } from './scale-util.js';

export interface DecideFigures {
  replicas: number;
  /** ns per `decide()` with every replica caught up with the floor (a replica is picked). */
  caughtUpNanos: { base: number; scaled: number; ratio: number };
  /** ns per `decide()` with no replica known to be at the floor (the most advanced one is to be checked). */
  noneReadyNanos: { base: number; scaled: number; ratio: number };
}

function views(count: number): ReplicaView[] {
  return Array.from({ length: count }, (_, i) => ({ name: `r${i + 1}`, healthy: true, replayLsn: i % 2 ? 200n : 150n, lagMs: 0 }));
}

function nanosPer(input: RouteInput, n: number): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) decide(input);
  return Number(process.hrtime.bigint() - started) / n;
}

function compare(base: RouteInput, scaled: RouteInput, n: number, rounds: number) {
  nanosPer(base, n);
  nanosPer(scaled, n); // warm-up
  const a: number[] = [];
  const b: number[] = [];
  for (let round = 0; round < rounds; round++) {
    a.push(nanosPer(base, n));
    b.push(nanosPer(scaled, n));
  }
  const [x, y] = [median(a), median(b)];
  return { base: fixed(x), scaled: fixed(y), ratio: fixed(y / x, 2) };
}

export function measureDecide(replicas = 10, { n = 200_000, rounds = 7 } = {}): DecideFigures {
  const input = (count: number, floor: bigint): RouteInput => ({
    statement: 'read',
    level: 'session',
    forcePrimary: false,
    floor,
    floorUnknown: false,
    writePending: false,
    replicas: views(count),
  });
  return {
    replicas,
    caughtUpNanos: compare(input(2, 100n), input(replicas, 100n), n, rounds),
    noneReadyNanos: compare(input(2, 300n), input(replicas, 300n), n, rounds),
  };
}
