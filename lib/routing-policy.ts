import type { Consistency } from './consistency.js';
import type { Lsn } from './lsn.js';

/** What the policy knows about one replica (from the monitor's cache or a live check). */
export interface ReplicaView {
  readonly name: string;
  /** Monitor says up, and the node is a replica of our primary. */
  readonly healthy: boolean;
  /** Last known `pg_last_wal_replay_lsn()`; undefined when never seen. */
  readonly replayLsn: Lsn | undefined;
  /** Replay lag in ms when last sampled (0 when caught up with the primary); undefined when unknown. */
  readonly lagMs: number | undefined;
  /**
   * `performance.now()` before which everything the primary wrote is replayed there: its
   * staleness at `now` is at most `now - freshAt`, which counts the time since the last poll.
   * Undefined: only `lagMs` is known.
   */
  readonly freshAt?: number | undefined;
  /** `performance.now()` when its position was last sampled. Undefined: unknown. */
  readonly sampledAt?: number | undefined;
  /** When a sample last showed its replay LSN move forward (`sampledAt` while it replays). Undefined: unknown. */
  readonly advancedAt?: number | undefined;
}

/** Everything a routing decision depends on. */
export interface RouteInput {
  /** `read` for a routable read or `BEGIN READ ONLY`; anything else goes to the primary. */
  readonly statement: 'read' | 'other';
  readonly level: Consistency;
  /** A hint comment or an API override asked for the primary. */
  readonly forcePrimary: boolean;
  /** The position the read must observe; 0n when the session has none. */
  readonly floor: Lsn;
  /** The session's floor could not be known (store unavailable): only the primary is safe. */
  readonly floorUnknown: boolean;
  /** The session wrote in this scope and its position is not read yet: read on the primary. */
  readonly writePending: boolean;
  readonly replicas: readonly ReplicaView[];
  /** A node to prefer among the ready ones (the client's or session's current node). */
  readonly preferred?: string | undefined;
  /** Replicas whose replay LSN was just read live (no further check is useful). */
  readonly checked?: ReadonlySet<string>;
  /** Replicas to leave out (e.g. the one a failed read just ran on). */
  readonly exclude?: ReadonlySet<string>;
  /**
   * How long ago, at most, the floor's position was written (ms): the primary was last seen
   * below it that long ago. Asked only when no replica is known to be ready; undefined: unknown.
   */
  readonly floorAgeMs?: ((floor: Lsn) => number | undefined) | undefined;
  /** How long a read may wait for a replica (the router's `maxWaitMs`). Default 0. */
  readonly maxWaitMs?: number | undefined;
  /** `performance.now()` at the decision, for the replicas' `freshAt`. */
  readonly now?: number | undefined;
  /** For spreading reads; defaults to Math.random. */
  readonly random?: () => number;
}

/** Why a read went where it did. Listed with their meaning in docs/consistency-model.md. */
export type PrimaryReason =
  | 'forced'
  | 'level-primary'
  | 'not-a-read'
  | 'no-replica'
  | 'too-stale'
  | 'replica-behind'
  | 'floor-unknown'
  | 'wrote-in-scope'
  | 'starting';
export type ReplicaReason = 'eventual' | 'no-floor' | 'caught-up' | 'caught-up-live' | 'checked-in-flight';
export type Reason = PrimaryReason | ReplicaReason;

export type Decision =
  | { readonly target: 'primary'; readonly reason: PrimaryReason }
  | { readonly target: 'replica'; readonly node: string; readonly reason: ReplicaReason }
  /**
   * No replica is known to be ready: read the replay LSN of `nodes` live (in parallel; `node` is
   * the most advanced of them), then decide again.
   */
  | { readonly target: 'check'; readonly node: string; readonly nodes: readonly string[] };

const primary = (reason: PrimaryReason): Decision => ({ target: 'primary', reason });

/** How stale a replica may be now (ms): its lag when sampled plus the time since, at most. */
function stalenessMs(replica: ReplicaView, now: number | undefined): number | undefined {
  if (replica.freshAt === undefined || now === undefined) return replica.lagMs;
  return Math.max(replica.lagMs ?? 0, now - replica.freshAt);
}

function pick(candidates: readonly ReplicaView[], preferred: string | undefined, random: () => number): ReplicaView {
  const sticky = preferred === undefined ? undefined : candidates.find((c) => c.name === preferred);
  if (sticky) return sticky;
  return candidates[Math.floor(random() * candidates.length) % candidates.length]!;
}

/**
 * The routing decision, as a pure function of its input: (statement, level, floor, replica
 * states, options) → (target, reason). No I/O: the caller performs any live check the decision
 * asks for and calls again with `checked`.
 */
export function decide(input: RouteInput): Decision {
  if (input.forcePrimary) return primary('forced');
  if (input.level === 'primary') return primary('level-primary');
  if (input.statement !== 'read') return primary('not-a-read');

  const exclude = input.exclude;
  let usable = input.replicas.filter((r) => r.healthy && !exclude?.has(r.name));
  if (usable.length === 0) return primary('no-replica');
  const random = input.random ?? Math.random;

  if (input.level === 'eventual') return { target: 'replica', node: pick(usable, input.preferred, random).name, reason: 'eventual' };

  if (typeof input.level === 'object') {
    const bound = input.level.maxStalenessMs;
    usable = usable.filter((r) => {
      const staleness = stalenessMs(r, input.now);
      return staleness !== undefined && staleness <= bound;
    });
    if (usable.length === 0) return primary('too-stale');
  }
  if (input.floorUnknown) return primary('floor-unknown');
  if (input.writePending) return primary('wrote-in-scope');

  if (input.floor === 0n) return { target: 'replica', node: pick(usable, input.preferred, random).name, reason: 'no-floor' };

  const ready = usable.filter((r) => r.replayLsn !== undefined && r.replayLsn >= input.floor);
  if (ready.length > 0) {
    const chosen = pick(ready, input.preferred, random);
    return { target: 'replica', node: chosen.name, reason: input.checked?.has(chosen.name) ? 'caught-up-live' : 'caught-up' };
  }

  // Nobody is known to be ready: check them live, once, in parallel.
  if (input.checked !== undefined && input.checked.size > 0) return primary('replica-behind');
  // Not one that replays so far behind in time that it cannot have reached a floor written
  // moments ago, even after waiting: that check (and wait) would be wasted. Half its lag is the
  // margin for a replica catching up faster than its last lag suggests. Only the lag of a replica
  // seen replaying says that: one whose replay stood still at its last sample (paused, blocked by
  // a conflict) may have resumed and caught up since, so it is checked.
  const age = input.floorAgeMs?.(input.floor);
  if (age !== undefined) {
    const wait = input.maxWaitMs ?? 0;
    usable = usable.filter((r) => !replaysBehind(r) || age + wait >= r.lagMs! / 2);
    if (usable.length === 0) return primary('replica-behind');
  }
  const nodes = [...usable].sort((a, b) => (position(b) > position(a) ? 1 : position(b) < position(a) ? -1 : 0)).map((r) => r.name);
  return { target: 'check', node: nodes[0]!, nodes };
}

const position = (r: ReplicaView): bigint => r.replayLsn ?? -1n;

/**
 * A stall longer than this (ms) is no short pause (a recovery conflict, a moment's hold): such a
 * replica is not checked for every read again and again; its lag counts as for a replaying one.
 */
const LONG_STALL_MS = 5000;

/**
 * A replica whose lag says it cannot have reached a recent floor: behind at its last sample, and
 * replaying then (its position moved in that sample: the lag is a delay, not a pause) or standing
 * still for longer than {@link LONG_STALL_MS}. Unknown sample times count as replaying.
 */
function replaysBehind(r: ReplicaView): boolean {
  if (r.lagMs === undefined || r.lagMs === 0) return false;
  if (r.advancedAt === undefined || r.sampledAt === undefined) return true;
  return r.advancedAt >= r.sampledAt || r.sampledAt - r.advancedAt > LONG_STALL_MS;
}
