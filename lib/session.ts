import type { Lsn } from './lsn.js';
import type { StoredPosition } from './position.js';
import { formatUncovered, onlyReplica, parseUncovered, single, unionUncovered, type UncoveredReads } from './uncovered.js';

/** Which WAL history a position belongs to: LSNs compare only within one. */
export interface WalHistory {
  readonly systemId: string | undefined;
  readonly timeline: number | undefined;
}

/** A position sample: at least the node's position at `sentAt` (`performance.now()` when asked). */
export interface PositionSample {
  readonly lsn: Lsn;
  readonly sentAt: number;
}

/** What loading from the store gave. */
export type StoreOutcome = 'not-read' | 'hit' | 'miss' | 'unavailable' | 'corrupt';

/**
 * One session's consistency state: its floor (what its reads must observe), the reads the floor
 * does not cover yet, and what is pending (a write whose position is not read yet, a floor from
 * another history). Pure state and its rules; the I/O is elsewhere (session store, planner).
 */
export class Session {
  /** Reads must observe at least this (writes, and what earlier reads observed up to a sample). */
  floor: Lsn = 0n;
  /** Reads made after `floor` was sampled (see {@link UncoveredReads}). */
  uncovered: UncoveredReads | undefined;
  /** `performance.now()` when the last uncovered read ended (or when they were loaded). */
  lastReadEndedAt = 0;
  /** WAL history of `floor`. */
  systemId: string | undefined;
  timeline: number | undefined;
  /** A write was acknowledged and its position not read from the primary yet. */
  writePending = false;
  /** This scope wrote something (its position must be stored even after a failover). */
  wrote = false;
  /** How many statements that may have written ran on the primary (a position read after the count changed may miss one). */
  writes = 0;
  /**
   * A write of this session lost its answer and may commit later (see `Fences`): a primary
   * position covers it only once its backend was fenced.
   */
  fenced = false;
  /** The floor must be raised to the primary's current position before the next read (another history, corrupt value). */
  resync = false;
  /** The in-flight read of the primary's position for this session, shared by concurrent reads. */
  positioning: Promise<void> | undefined;
  /** The store read, started on the first read that needs the floor. */
  loading: Promise<void> | undefined;
  /** The store read finished (or failed: see `floorUnknown`). */
  loaded = false;
  /** What the store held when loaded (what its compare-and-merge compares against). */
  storedValue: StoredPosition | undefined;
  /** The store could not be read: the floor is unknown, only the primary is safe. */
  floorUnknown = false;
  storeOutcome: StoreOutcome = 'not-read';

  constructor(
    /** Store key; undefined for the process-wide session and token scopes, which live in memory. */
    readonly key: string | undefined,
    /**
     * Known to be brand new (a session cookie issued just now): nothing stored for it means no
     * writes. Otherwise a key the store does not hold may have been forgotten (a flushed or
     * failed-over store, an eviction) or may name an identity that just changed (a login).
     */
    readonly fresh = false,
  ) {}

  raise(lsn: Lsn): void {
    if (lsn > this.floor) this.floor = lsn;
  }

  /** The session as a position, for the store and tokens. */
  position(): StoredPosition {
    return { lsn: this.floor, node: formatUncovered(this.uncovered), systemId: this.systemId, timeline: this.timeline };
  }

  /** Nothing to carry: no floor, no uncovered read, nothing pending. */
  get empty(): boolean {
    return this.floor === 0n && this.uncovered === undefined && !this.writePending && !this.resync;
  }

  /** The replica of the uncovered reads, to stay on (undefined when they span several nodes or the primary). */
  get stickyReplica(): string | undefined {
    return onlyReplica(this.uncovered);
  }

  /** Reading `node` next would leave the node of the uncovered reads (so they must be covered first). */
  movesTo(node: string): boolean {
    return this.uncovered !== undefined && onlyReplica(this.uncovered) !== node;
  }

  /** Merges a position of the same history (max of floors, union of uncovered reads). */
  absorb(position: StoredPosition, now: number): void {
    this.raise(position.lsn);
    if (position.node !== undefined) {
      this.uncovered = unionUncovered(this.uncovered, parseUncovered(position.node));
      this.lastReadEndedAt = Math.max(this.lastReadEndedAt, now);
    }
    this.systemId ??= position.systemId;
    this.timeline ??= position.timeline;
  }

  /**
   * Merges a position from the store or a token, given the primary's history. From another WAL
   * history (or without one when ours is known) it means "the current primary position"
   * (`resync`). False for a position of another PostgreSQL system altogether.
   */
  merge(position: StoredPosition, ours: WalHistory, now: number): boolean {
    if (ours.systemId !== undefined && position.systemId !== undefined && position.systemId !== ours.systemId) return false;
    const comparable =
      ours.systemId === undefined ||
      ours.timeline === undefined ||
      (position.systemId === ours.systemId && position.timeline === ours.timeline);
    if (comparable) this.absorb(position, now);
    else this.resync = true;
    return true;
  }

  /** A read ended on `node` (`'primary'` or a replica name): later reads must not observe less than it did. */
  noteRead(node: string, now: number): void {
    const reads = this.uncovered;
    if (node === 'primary') this.uncovered = 'primary';
    else if (reads === undefined) this.uncovered = single(node);
    else if (reads !== 'primary' && !reads.includes(node)) this.uncovered = unionUncovered(reads, single(node));
    this.lastReadEndedAt = now;
  }

  /** A statement that may have written ran on the primary. */
  noteWrite(): void {
    this.writePending = true;
    this.wrote = true;
    this.writes++;
  }

  /** Marks the floor as belonging to the primary's current history. */
  stamp(ours: WalHistory): void {
    this.systemId = ours.systemId;
    this.timeline = ours.timeline;
  }

  /** The floor has no history yet (its reads ran in today's: stamp it before it leaves the process). */
  get unstamped(): boolean {
    return this.systemId === undefined && this.timeline === undefined;
  }

  /** Raises the floor to a position sampled after the uncovered reads, which it covers. */
  cover(sample: PositionSample, ours: WalHistory): void {
    this.raise(sample.lsn);
    this.stamp(ours);
    if (this.lastReadEndedAt <= sample.sentAt) this.uncovered = undefined;
  }

  /**
   * The primary's position, read after the session's writes were acknowledged: the new floor.
   * After a resync the old floor (of another history) is dropped first.
   */
  applyPrimaryPosition(sample: PositionSample, ours: WalHistory, resynced: boolean): void {
    if (resynced) this.floor = 0n;
    this.cover(sample, ours);
  }

  /**
   * The position of a committed write could not be read: whatever reads next must first sample
   * the primary (which is past it) before using any replica.
   */
  positionUnknown(now: number): void {
    this.writePending = false;
    this.uncovered = 'primary';
    this.lastReadEndedAt = now;
  }

  /** Takes what an inner scope (which ended) wrote and read: this scope goes on after it. */
  fold(child: Session): void {
    if (child === this) return;
    if (child.writePending) {
      this.writePending = true;
      this.writes++; // a position of this session's in flight may not be past it
    }
    if (child.fenced) this.fenced = true;
    if (child.resync) this.resync = true;
    if (child.floor > 0n) {
      const comparable =
        this.timeline === undefined ||
        child.timeline === undefined ||
        (this.systemId === child.systemId && this.timeline === child.timeline);
      if (comparable) this.absorb(child.position(), child.lastReadEndedAt);
      else this.resync = true;
    } else if (child.uncovered !== undefined) {
      this.absorb({ lsn: 0n, node: formatUncovered(child.uncovered) }, child.lastReadEndedAt);
    }
  }
}
