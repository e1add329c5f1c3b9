import { AsyncLocalStorage } from 'node:async_hooks';
import type { Consistency } from './consistency.js';
import type { Lsn } from './lsn.js';

/**
 * One session's consistency state: what it must observe, and what it wrote that is not yet
 * turned into a position.
 */
export class Session {
  /** Position loaded from the store and raised by this process: reads must observe it. */
  floor: Lsn = 0n;
  /** A write was acknowledged and its position not yet read from the primary. */
  dirty = false;
  /** The in-flight `pg_current_wal_insert_lsn()` read, shared by concurrent readers. */
  fetching: Promise<void> | undefined;
  /** The store read, started on the first read that needed the floor. */
  loaded: Promise<void> | undefined;
  /** The store read finished (or failed: see floorUnknown). */
  loadDone = false;
  /** The store could not be read: the floor is unknown. */
  floorUnknown = false;
  /** This scope wrote something (its position must be stored at the end). */
  wrote = false;

  constructor(
    /** Store key; undefined for the process-wide session, which lives only in memory. */
    readonly key: string | undefined,
  ) {}

  raise(lsn: Lsn): void {
    if (lsn > this.floor) this.floor = lsn;
  }
}

/** What AsyncLocalStorage carries: the session and this scope's overrides. */
export interface Scope {
  readonly session: Session;
  readonly consistency: Consistency | undefined;
  readonly forcePrimary: boolean;
}

export const scopes = new AsyncLocalStorage<Scope>();
