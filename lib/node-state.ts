import type { Lsn } from './lsn.js';
import type { NodeRole } from './nodes.js';

/** A node's state as the monitor last saw it. */
export interface NodeState {
  readonly name: string;
  readonly role: 'primary' | 'replica';
  /** The server's id outside this process (see lib/server-ids.ts); undefined until polled. */
  serverId?: string | undefined;
  /**
   * `up`; `down` after `downAfter` failed polls (or a connection error on a query);
   * `not-replica` when a replica left recovery (promoted) — out of rotation for good;
   * `other-history` when a replica follows another WAL history than the primary (another system
   * or timeline) — out of rotation until it follows the primary's again;
   * `unknown` before the first poll.
   */
  status: 'unknown' | 'up' | 'down' | 'not-replica' | 'other-history';
  /** `pg_control_system().system_identifier`, when readable. */
  systemId: string | undefined;
  /** The timeline this node is on (primary) or receives (replica). */
  timeline: number | undefined;
  /**
   * Replica: set (to its {@link historyKey}) when it was seen ahead of the primary, so on another
   * history; it stays out of rotation until that key changes (a restart, a new timeline).
   */
  divergedKey?: string | undefined;
  /**
   * `performance.now()` when the request behind the cached LSN was sent: the cached position is
   * at least the node's position at that moment.
   */
  sampledAt: number;
  /**
   * `performance.now()` when the cached position was last dropped (the node failed or restarted):
   * positions read after that may be lower than ones seen before it.
   */
  resetAt: number;
  replayLsn: Lsn | undefined;
  receiveLsn: Lsn | undefined;
  /**
   * Whether the process id its connections were given is not their backend's (a pooler such as
   * PgBouncer between the router and the server: it hands out keys of its own). Then no pid names
   * a backend of ours; undefined until a poll has compared them.
   */
  pooled: boolean | undefined;
  /** Primary only: `pg_current_wal_insert_lsn()`. */
  insertLsn: Lsn | undefined;
  lagBytes: number | undefined;
  /**
   * Replay lag in ms when last sampled: 0 when the replay LSN was at or past the primary's
   * position asked for before that sample; otherwise how long before the sample the primary was
   * last seen at or below it. Derived from positions, the same for every role.
   */
  lagMs: number | undefined;
  /**
   * Replica: `performance.now()` before which everything the primary wrote is replayed here (the
   * primary was last seen at or below the replay LSN then). Its staleness now is at most
   * `performance.now() - freshAt`, however long ago the replica was polled. Undefined: unknown.
   */
  freshAt?: number | undefined;
  /**
   * Replica: `sentAt` of the last sample whose replay LSN was above the one before it. Equal to
   * `sampledAt` while it replays; older while replay stands still (paused, blocked by a
   * conflict, or nothing new to replay).
   */
  advancedAt?: number | undefined;
  lastPollAt: number | undefined;
  lastError: string | undefined;
  failures: number;
  successes: number;
}

/** A node's state before its first poll. */
export function newNodeState(name: string, role: NodeRole): NodeState {
  return {
    name,
    role,
    status: 'unknown',
    replayLsn: undefined,
    receiveLsn: undefined,
    insertLsn: undefined,
    pooled: undefined,
    lagBytes: undefined,
    lagMs: undefined,
    freshAt: undefined,
    advancedAt: undefined,
    lastPollAt: undefined,
    lastError: undefined,
    failures: 0,
    successes: 0,
    systemId: undefined,
    timeline: undefined,
    sampledAt: -Infinity,
    resetAt: -Infinity,
  };
}

/** Drops a node's cached position (it can only be trusted again from a new answer). */
export function forget(state: NodeState): void {
  state.resetAt = performance.now();
  state.replayLsn = undefined;
  state.insertLsn = undefined;
  state.receiveLsn = undefined;
  state.lagBytes = undefined;
  state.lagMs = undefined;
  state.freshAt = undefined;
  state.advancedAt = undefined;
  state.sampledAt = -Infinity;
}

/** A poll failed: counted; `down` once `downAfter` polls in a row failed (at once before any good one). */
export function failedPoll(state: NodeState, downAfter: number): void {
  state.successes = 0;
  state.failures++;
  if (state.status !== 'not-replica' && (state.status === 'unknown' || state.failures >= downAfter)) state.status = 'down';
}

/** A poll answered (the node is in its role and history): `up` again after `upAfter` good polls in a row. */
export function answeredPoll(state: NodeState, upAfter: number): void {
  if (state.status === 'up') return;
  if (state.status === 'unknown' || state.status === 'other-history' || state.successes >= upAfter) state.status = 'up';
}

/** A replica follows the primary's WAL history when every part of the identity known on both sides agrees. */
export function sameHistory(replica: NodeState, primary: NodeState | undefined): boolean {
  if (replica.divergedKey !== undefined) return false;
  if (!primary) return true;
  if (replica.systemId !== undefined && primary.systemId !== undefined && replica.systemId !== primary.systemId) return false;
  if (replica.timeline !== undefined && primary.timeline !== undefined && replica.timeline !== primary.timeline) return false;
  return true;
}

/**
 * A replica's replay position read before the primary's insert position was asked for, and
 * past it, cannot be on the primary's history: on one history a replica replays only what the
 * primary has flushed. (A replica following a newer primary while this one came back
 * writable.) Positions are readable by any role, unlike the replica's timeline.
 */
export function aheadOfPrimary(
  polled: { replay: Lsn; answeredAt: number } | undefined,
  primaryInsert: Lsn,
  primarySentAt: number,
): boolean {
  return polled !== undefined && polled.answeredAt < primarySentAt && polled.replay > primaryInsert;
}

/** What a verdict of "another history" holds for: both servers' start times and the replica's timeline. */
export function historyKey(replicaStarted: string | undefined, timeline: number | undefined, primaryStarted: string | undefined): string {
  return `${replicaStarted}|${timeline}|${primaryStarted}`;
}

/**
 * The cluster's WAL history while the primary has not answered (down since the router started):
 * the system identifier the replicas agree on — every server of one cluster has it — and no
 * timeline. A position of another system is then still told apart (a foreign token is refused,
 * not taken as a floor); one without a known timeline is not compared by timeline.
 */
export function clusterHistory(states: readonly NodeState[]): { systemId: string | undefined; timeline: undefined } {
  const ids = new Set(states.filter((s) => s.role === 'replica' && s.systemId !== undefined).map((s) => s.systemId));
  return { systemId: ids.size === 1 ? [...ids][0] : undefined, timeline: undefined };
}
