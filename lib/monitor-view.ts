import type { Lsn } from './lsn.js';
import type { NodeConfig } from './nodes.js';
import type { NodeState } from './node-state.js';
import type { PositionSample, WalHistory } from './session.js';

/** Monitor settings (all optional in {@link RouterOptions}). */
export interface MonitorOptions {
  /** Mean time between polls of each node, in ms (each poll is jittered ±20%). Default 500. */
  intervalMs: number;
  /** `statement_timeout` and connect timeout of monitor queries, in ms. Default 1000. */
  timeoutMs: number;
  /** Consecutive failed polls before a node is marked down. Default 2. */
  downAfter: number;
  /** Consecutive good polls before a down node is marked up again. Default 2. */
  upAfter: number;
}

/** A live sample of a node's position. */
export interface Sample {
  readonly lsn: Lsn | undefined;
  /** `performance.now()` when the request was sent. */
  readonly sentAt: number;
}

/**
 * What the router needs from its monitor: the cached view of every node, live samples, and the
 * primary's recent positions. `Monitor` polls real servers; a database-free test passes its own.
 */
export interface MonitorView {
  /** Bumped on every change of any node's state, so readers can cache what they derive from it. */
  readonly version: number;
  /** Resolves when every node has been polled once. */
  readonly ready: Promise<void>;
  /** Resolves when the primary has been polled once (what the first statements wait for). */
  readonly primaryReady: Promise<void>;
  state(name: string): NodeState | undefined;
  states(): NodeState[];
  /** A live sample of a node's position, sent at or after `notBefore` (shared with one in flight). */
  sample(name: string, notBefore?: number): Promise<Sample>;
  /** Starts watching a replica added at run time; resolves after its first poll. */
  watch(node: NodeConfig): Promise<void>;
  /** Stops watching a removed replica. */
  unwatch(name: string): Promise<void>;
  /**
   * A primary position read elsewhere (after a write), folded into the cache; returns it as the
   * end of the last record inserted, the form replay positions take (see `endOfInserted`).
   */
  notePrimaryPosition(lsn: Lsn, sentAt: number): Lsn;
  /**
   * A replica's replay position read elsewhere (with a read, see lib/position-flight.ts), folded
   * into the cache like a sample when it came from the server polled there (`started`: its
   * postmaster start time, as the polls read it); false when it did not (then it means nothing).
   */
  noteReplayPosition(name: string, lsn: Lsn, sentAt: number, started: string | undefined): boolean;
  /** The latest time the primary was seen below `lsn` (whatever wrote `lsn` happened after it). */
  writtenAfter(lsn: Lsn): number | undefined;
  /** The earliest recent primary position asked for at or after `since`. */
  primarySampleSince(since: number): PositionSample | undefined;
  /** The id of a node's server outside this process, once polled (see lib/server-ids.ts). */
  serverIdOf(name: string): string | undefined;
  /** Our name for the server with this id, if it is one of ours. */
  nodeOfServer(id: string): string | undefined;
  /** The primary's WAL history, when known. */
  primaryIdentity(): WalHistory;
  /** A query on this node failed with a connection error: take it out of rotation now. */
  reportConnectionFailure(name: string, error: unknown): void;
  close(): Promise<void>;
}

/** Makes the router's monitor. Default: a `Monitor` polling every node. */
/** What the router counts of a monitor's work: each live sample it sends (not its polls), by the node's role. */
export type LiveSampleCounter = (role: 'primary' | 'replica') => void;

/** Makes a monitor. One that never calls `counted` leaves the live samples out of `positionReads` and `liveChecks`. */
export type MonitorFactory = (nodes: readonly NodeConfig[], options: MonitorOptions, counted?: LiveSampleCounter) => MonitorView;
