import { AsyncLocalStorage } from 'node:async_hooks';
import type { Consistency } from './consistency.js';
import type { Lsn } from './lsn.js';
import { unionNode, type StoredPosition } from './position.js';

/**
 * One session's consistency state (see {@link StoredPosition} for what floor and node mean).
 */
export class Session {
  /** Reads must observe at least this (writes, and what earlier reads observed up to a sample). */
  floor: Lsn = 0n;
  /** Node of reads not covered by `floor` (`'primary'`: sample the primary before any replica). */
  node: string | undefined;
  /** `performance.now()` when the last read on `node` ended (or when `node` was loaded). */
  nodeReadEndedAt = 0;
  /** WAL history of `floor`. */
  systemId: string | undefined;
  timeline: number | undefined;
  /** A write was acknowledged and its position not yet read from the primary. */
  dirty = false;
  /** The floor must be raised to the primary's current position before the next read (another history, corrupt value). */
  resync = false;
  /** The in-flight primary position read, shared by concurrent readers. */
  fetching: Promise<void> | undefined;
  /** The store read, started on the first read that needed the floor. */
  loaded: Promise<void> | undefined;
  /** The store read finished (or failed: see floorUnknown). */
  loadDone = false;
  /** What the store held when loaded (for its compare-and-merge). */
  loadedValue: StoredPosition | undefined;
  /** The store could not be read: the floor is unknown. */
  floorUnknown = false;
  /** This scope wrote something. */
  wrote = false;
  /** What loading from the store gave: `hit`, `miss`, `unavailable`, `corrupt`, or `not-read`. */
  storeOutcome: 'not-read' | 'hit' | 'miss' | 'unavailable' | 'corrupt' = 'not-read';

  constructor(
    /** Store key; undefined for the process-wide session and token scopes, which live in memory. */
    readonly key: string | undefined,
  ) {}

  raise(lsn: Lsn): void {
    if (lsn > this.floor) this.floor = lsn;
  }

  /** The session as a position, for the store and tokens. */
  position(): StoredPosition {
    return { lsn: this.floor, node: this.node, systemId: this.systemId, timeline: this.timeline };
  }

  /** Merges a position of the same history (max of floors, union of uncovered nodes). */
  absorb(position: StoredPosition, now: number): void {
    this.raise(position.lsn);
    if (position.node !== undefined) {
      this.node = unionNode(this.node, position.node);
      this.nodeReadEndedAt = Math.max(this.nodeReadEndedAt, now);
    }
    this.systemId ??= position.systemId;
    this.timeline ??= position.timeline;
  }
}

/** What AsyncLocalStorage carries: the session and this scope's overrides. */
export interface Scope {
  readonly session: Session;
  readonly consistency: Consistency | undefined;
  readonly forcePrimary: boolean;
}

export const scopes = new AsyncLocalStorage<Scope>();
