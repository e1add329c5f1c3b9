import { describe, expect, it } from 'vitest';
import { decide, type Decision, type ReplicaView, type RouteInput } from '../../lib/routing-policy.js';

const r = (name: string, replayLsn: bigint | undefined, extra: Partial<ReplicaView> = {}): ReplicaView => ({
  name,
  healthy: true,
  replayLsn,
  lagMs: 0,
  ...extra,
});

const base: RouteInput = {
  statement: 'read',
  level: 'session',
  forcePrimary: false,
  floor: 100n,
  floorUnknown: false,
  writePending: false,
  replicas: [r('r1', 150n), r('r2', 50n)],
  random: () => 0,
};

const cases: Array<[string, Partial<RouteInput>, Decision]> = [
  ['a hint or override forces the primary', { forcePrimary: true }, { target: 'primary', reason: 'forced' }],
  ['level primary', { level: 'primary' }, { target: 'primary', reason: 'level-primary' }],
  ['anything but a read', { statement: 'other' }, { target: 'primary', reason: 'not-a-read' }],
  ['no replicas configured', { replicas: [] }, { target: 'primary', reason: 'no-replica' }],
  ['every replica down', { replicas: [r('r1', 150n, { healthy: false })] }, { target: 'primary', reason: 'no-replica' }],
  [
    'the only replica excluded (failed just now)',
    { replicas: [r('r1', 150n)], exclude: new Set(['r1']) },
    { target: 'primary', reason: 'no-replica' },
  ],
  ['eventual ignores the floor', { level: 'eventual', replicas: [r('r2', 50n)] }, { target: 'replica', node: 'r2', reason: 'eventual' }],
  [
    'eventual ignores an unknown floor too',
    { level: 'eventual', floorUnknown: true, replicas: [r('r2', 50n)] },
    { target: 'replica', node: 'r2', reason: 'eventual' },
  ],
  [
    'staleness bound excludes laggards',
    { level: { maxStalenessMs: 100 }, replicas: [r('r1', 150n, { lagMs: 500 })] },
    { target: 'primary', reason: 'too-stale' },
  ],
  [
    'unknown lag counts as too stale',
    { level: { maxStalenessMs: 100 }, replicas: [r('r1', 150n, { lagMs: undefined })] },
    { target: 'primary', reason: 'too-stale' },
  ],
  [
    'staleness bound keeps the fresh one',
    { level: { maxStalenessMs: 100 }, replicas: [r('r1', 150n, { lagMs: 500 }), r('r2', 150n, { lagMs: 50 })] },
    { target: 'replica', node: 'r2', reason: 'caught-up' },
  ],
  [
    'staleness bound still honours the floor',
    { level: { maxStalenessMs: 100 }, replicas: [r('r2', 50n, { lagMs: 0 })] },
    { target: 'check', node: 'r2', nodes: ['r2'] },
  ],
  [
    'staleness bound counts the time since the replica was last known fresh (poll age)',
    { level: { maxStalenessMs: 500 }, floor: 0n, now: 1600, replicas: [r('r1', 150n, { lagMs: 0, freshAt: 1000 })] },
    { target: 'primary', reason: 'too-stale' },
  ],
  [
    '… and keeps it while that is within the bound',
    { level: { maxStalenessMs: 500 }, floor: 0n, now: 1400, replicas: [r('r1', 150n, { lagMs: 0, freshAt: 1000 })] },
    { target: 'replica', node: 'r1', reason: 'no-floor' },
  ],
  [
    '… never below the lag when sampled',
    { level: { maxStalenessMs: 500 }, floor: 0n, now: 1100, replicas: [r('r1', 150n, { lagMs: 700, freshAt: 1000 })] },
    { target: 'primary', reason: 'too-stale' },
  ],
  [
    'without the time of the decision, the lag when sampled',
    { level: { maxStalenessMs: 500 }, floor: 0n, replicas: [r('r1', 150n, { lagMs: 0, freshAt: -1e9 })] },
    { target: 'replica', node: 'r1', reason: 'no-floor' },
  ],
  ['store unavailable: floor unknown', { floorUnknown: true }, { target: 'primary', reason: 'floor-unknown' }],
  ['the scope wrote: its reads use the primary', { writePending: true }, { target: 'primary', reason: 'wrote-in-scope' }],
  ['no floor: any healthy replica', { floor: 0n, replicas: [r('r2', 50n)] }, { target: 'replica', node: 'r2', reason: 'no-floor' }],
  [
    'no floor, replica position never seen',
    { floor: 0n, replicas: [r('r2', undefined)] },
    { target: 'replica', node: 'r2', reason: 'no-floor' },
  ],
  ['cached replay position at or past the floor', { replicas: [r('r1', 100n)] }, { target: 'replica', node: 'r1', reason: 'caught-up' }],
  ['only ready replicas are candidates', {}, { target: 'replica', node: 'r1', reason: 'caught-up' }],
  ['read-your-writes behaves like session here', { level: 'read-your-writes' }, { target: 'replica', node: 'r1', reason: 'caught-up' }],
  [
    'nobody known ready: check them live, the most advanced first',
    { replicas: [r('r1', 60n), r('r2', 90n), r('r3', undefined)] },
    { target: 'check', node: 'r2', nodes: ['r2', 'r1', 'r3'] },
  ],
  [
    'floor written 5 ms ago, replicas 500 ms behind in time: no live check, the primary',
    { replicas: [r('r1', 60n, { lagMs: 500 }), r('r2', 90n, { lagMs: 600 })], floorAgeMs: () => 5 },
    { target: 'primary', reason: 'replica-behind' },
  ],
  [
    '… unless waiting could bridge it (maxWaitMs)',
    { replicas: [r('r1', 60n, { lagMs: 500 })], floorAgeMs: () => 5, maxWaitMs: 300 },
    { target: 'check', node: 'r1', nodes: ['r1'] },
  ],
  [
    '… and only the replicas that can have reached it are checked',
    { replicas: [r('r1', 60n, { lagMs: 10 }), r('r2', 90n, { lagMs: 500 })], floorAgeMs: () => 5 },
    { target: 'check', node: 'r1', nodes: ['r1'] },
  ],
  [
    'floor written long ago: a lagging replica may have reached it, check it',
    { replicas: [r('r1', 60n, { lagMs: 500 })], floorAgeMs: () => 2000 },
    { target: 'check', node: 'r1', nodes: ['r1'] },
  ],
  [
    'floor age unknown: check',
    { replicas: [r('r1', 60n, { lagMs: 500 })], floorAgeMs: () => undefined },
    { target: 'check', node: 'r1', nodes: ['r1'] },
  ],
  [
    'floor written 5 ms ago, replica caught up when last sampled 1 s ago: the time since is no lag, check it',
    { replicas: [r('r1', 60n, { lagMs: 0, freshAt: 0 })], now: 1000, floorAgeMs: () => 5 },
    { target: 'check', node: 'r1', nodes: ['r1'] },
  ],
  [
    'floor written 5 ms ago, replica replaying 500 ms behind at its last sample: no live check',
    { replicas: [r('r1', 60n, { lagMs: 500, sampledAt: 1000, advancedAt: 1000 })], now: 1010, floorAgeMs: () => 5 },
    { target: 'primary', reason: 'replica-behind' },
  ],
  [
    '… but one whose replay stood still at its last sample (paused, blocked) may have resumed since: check it',
    { replicas: [r('r1', 60n, { lagMs: 800, sampledAt: 1000, advancedAt: 400 })], now: 1010, floorAgeMs: () => 5 },
    { target: 'check', node: 'r1', nodes: ['r1'] },
  ],
  [
    '… unless it has stood still for long (paused for an hour): no live check for every read',
    { replicas: [r('r1', 60n, { lagMs: 3_600_000, sampledAt: 3_600_500, advancedAt: 400 })], now: 3_600_510, floorAgeMs: () => 5 },
    { target: 'primary', reason: 'replica-behind' },
  ],
  [
    'lag unknown: check',
    { replicas: [r('r1', 60n, { lagMs: undefined })], floorAgeMs: () => 5 },
    { target: 'check', node: 'r1', nodes: ['r1'] },
  ],
  [
    'checked live and ready',
    { replicas: [r('r2', 120n)], checked: new Set(['r2']) },
    { target: 'replica', node: 'r2', reason: 'caught-up-live' },
  ],
  [
    'checked live and still behind: primary',
    { replicas: [r('r1', 60n), r('r2', 90n)], checked: new Set(['r2']) },
    { target: 'primary', reason: 'replica-behind' },
  ],
  [
    'a preferred (sticky) node wins among ready ones',
    { replicas: [r('r1', 150n), r('r2', 150n)], preferred: 'r2' },
    { target: 'replica', node: 'r2', reason: 'caught-up' },
  ],
  [
    'a preferred node that is not ready is not used',
    { replicas: [r('r1', 150n), r('r2', 50n)], preferred: 'r2' },
    { target: 'replica', node: 'r1', reason: 'caught-up' },
  ],
];

describe('routing policy (pure)', () => {
  it.each(cases)('%s', (_name, input, expected) => {
    expect(decide({ ...base, ...input })).toEqual(expected);
  });

  it('gives every documented reason', () => {
    const reasons = new Set(cases.map(([, input]) => decide({ ...base, ...input })).flatMap((d) => ('reason' in d ? [d.reason] : [])));
    expect([...reasons].sort()).toEqual(
      [
        'caught-up',
        'caught-up-live',
        'eventual',
        'floor-unknown',
        'forced',
        'level-primary',
        'no-floor',
        'no-replica',
        'not-a-read',
        'replica-behind',
        'too-stale',
        'wrote-in-scope',
      ].sort(),
    );
  });

  it('spreads reads over the ready replicas', () => {
    const replicas = [r('a', 200n), r('b', 200n), r('c', 200n)];
    const seen = new Set<string>();
    for (const x of [0, 0.34, 0.67, 0.99]) {
      const d = decide({ ...base, replicas, random: () => x });
      if (d.target === 'replica') seen.add(d.node);
    }
    expect([...seen].sort()).toEqual(['a', 'b', 'c']);
  });

  it('is pure: same input, same output, input untouched', () => {
    const input: RouteInput = { ...base, replicas: [r('r1', 60n), r('r2', 90n)] };
    const copy = structuredClone({ ...input, random: undefined });
    expect(decide(input)).toEqual(decide(input));
    expect({ ...input, random: undefined }).toEqual(copy);
  });
});
