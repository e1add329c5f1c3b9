import type { Counters } from './counters.js';
import type { MonitorView } from './monitor-view.js';
import { newVersion, samePosition, unionNode, withVersion, type StoredPosition } from './position.js';
import type { PrimaryPositions } from './primary-position.js';
import { RecoveryFloor } from './recovery-floor.js';
import { StoredCovers } from './stored-covers.js';
import { toLocal, toShared } from './server-ids.js';
import type { Session } from './session.js';
import { LostWrites, type LostWrite } from './stores/lost-writes.js';
import { NOT_NOW, type GuardedStore } from './stores/guard.js';

/** What {@link SessionStore.ensureLoaded} and {@link SessionStore.persist} give for work done in this turn. */
const DONE: Promise<void> = Promise.resolve();

type Warn = (kind: string, message: string, details?: Record<string, unknown>) => void;

/**
 * Sessions and the position store: loads a session's stored position (once, lazily), turns its
 * pending writes into a floor, and stores its new position at the end of its scope with the
 * store's compare-and-merge. Fails safe: a store that cannot be read leaves the floor unknown
 * (reads go to the primary); what a failed store write tried to store is kept in the process
 * ({@link LostWrites}) and merged into later loads of that key, as a stored value is; after a sign
 * that the store may have lost what it acknowledged ({@link SessionStore.storeMayHaveLost}), or
 * more failed keys than the process keeps, loaded floors are raised to the primary position
 * observed after it; corrupt and foreign values count as the current primary position.
 */
export class SessionStore {
  /** Floors loaded from the store are raised to this: the primary's position after positions may have been lost. */
  readonly #recovery: RecoveryFloor;
  /** Covers of stored reads on the primary, made off the request path. */
  readonly #covers: StoredCovers;
  /** Positions this process failed to store, per key; one pushed out is a loss of unknown keys. */
  readonly #lost: LostWrites;
  /** The lost positions a session merged at its load (its successful raise carries them). */
  readonly #mergedLost = new WeakMap<Session, LostWrite>();

  constructor(
    readonly store: GuardedStore,
    readonly primary: PrimaryPositions,
    readonly monitor: MonitorView,
    /** Whether a node name is one of this router's replicas. */
    readonly isReplica: (name: string) => boolean,
    readonly counters: Counters,
    readonly warn: Warn,
    /** How many keys' failed writes are kept before falling back to a global floor. */
    lostCapacity?: number,
  ) {
    this.#recovery = new RecoveryFloor(primary, monitor);
    this.#covers = new StoredCovers(store, monitor, counters);
    this.#lost = new LostWrites(lostCapacity, () => {
      this.storeMayHaveLost();
      this.warn(
        'lost-writes-overflow',
        'more failed store writes than kept in the process; floors loaded from now on are raised to the primary position',
      );
    });
  }

  /** Keys whose failed store writes are kept in the process (see {@link LostWrites}). */
  get lostKeys(): number {
    return this.#lost.size;
  }

  /**
   * The store may have lost or rolled back positions it acknowledged (it said so: reconnected,
   * restarted, failed over), or this process dropped a failed write it could not keep. Loads that
   * complete from now on are raised to a primary position observed after this moment; nothing
   * else changes, and it costs nothing until the next load.
   */
  storeMayHaveLost(): void {
    this.#recovery.lost();
  }

  /** Loads the stored position once per session (shared by concurrent reads). */
  ensureLoaded(session: Session): Promise<void> {
    if (session.key === undefined || this.loadNow(session)) return DONE;
    session.loading ??= this.#load(session);
    return session.loading;
  }

  /**
   * Loads the session's stored position in this turn when the store answers synchronously (the
   * in-process store) and nothing needs waiting for (no recovery floor to sample): the no-I/O
   * path stays synchronous. True when the session is loaded.
   */
  loadNow(session: Session): boolean {
    if (session.loaded) return true;
    if (session.key === undefined || session.loading || this.#recovery.stale) return false;
    const startedAt = performance.now();
    const stored = this.store.getNow(session.key);
    if (stored === NOT_NOW) return false;
    this.counters.storeReads++;
    this.#merged(session, stored, this.#received(session, stored, startedAt));
    session.loading = DONE;
    session.loaded = true;
    return true;
  }

  /** Makes the session's floor current before a read: loaded, and its pending writes positioned. */
  async floorFor(session: Session): Promise<void> {
    if (session.key !== undefined && !session.loaded) await this.ensureLoaded(session);
    const ours = this.monitor.primaryIdentity();
    if (session.timeline !== undefined && ours.timeline !== undefined && session.timeline !== ours.timeline) {
      session.resync = true; // a failover since the floor was taken: LSNs of the old history do not compare
    }
    // A keyed scope's own writes send its reads to the primary until it ends (one position read
    // per scope that wrote); in memory they are positioned now.
    const writes = session.key === undefined;
    if ((writes && session.writePending) || session.resync || session.positioning) await this.position(session, writes);
  }

  /**
   * Reads the primary's position for what the session has pending (a resync; its writes too when
   * `writes`), one read at a time, shared by concurrent callers. Rejects when the primary cannot
   * be reached.
   */
  async position(session: Session, writes: boolean): Promise<void> {
    while ((writes && session.writePending) || session.resync || session.positioning) {
      if (!session.positioning) {
        session.positioning = this.primary.positionSession(session).finally(() => {
          session.positioning = undefined;
        });
      }
      await session.positioning;
    }
  }

  async #load(session: Session): Promise<void> {
    const startedAt = performance.now();
    try {
      this.counters.storeReads++;
      const stored = await this.store.get(session.key!);
      const lost = this.#received(session, stored, startedAt);
      // Positions may have been lost (a store that reconnected or restarted, a failed write this
      // process could not keep): not below the primary's position observed after the last such moment.
      if (this.#recovery.stale) await this.#recovery.sample();
      this.#merged(session, stored, lost);
    } catch {
      this.counters.storeErrors++;
      session.storeOutcome = 'unavailable';
      session.floorUnknown = true; // fail safe: reads that need a floor go to the primary
    }
    session.loaded = true;
  }

  /** What a load got from the store, noted; returns what this process failed to store for the key. */
  #received(session: Session, stored: StoredPosition | undefined | null, startedAt: number): LostWrite | undefined {
    // What this process failed to store for the key: known exactly, merged as a stored value.
    // Taken before any wait, so one pushed out before it is covered by the floor below.
    const lost = this.#lost.peek(session.key!);
    session.storeOutcome = stored === null ? 'corrupt' : stored === undefined ? 'miss' : 'hit';
    // Nothing stored does not mean nothing written (a store that forgot, silently; a new
    // identity for the same client): unless the session is brand new, it is owed what the
    // primary had when this load started, as if it had read there. A primary position taken
    // after that covers it (free when one is known, else one shared sample before a replica
    // is used); sessions that never read a replica pay nothing.
    if (stored === undefined && !session.fresh) session.absorb({ lsn: 0n, node: 'primary' }, startedAt);
    return lost;
  }

  /** The loaded value (and what this process failed to store) merged into the session, above the recovery floor. */
  #merged(session: Session, stored: StoredPosition | undefined | null, lost: LostWrite | undefined): void {
    session.raise(this.#recovery.lsn);
    if (stored === null) {
      this.counters.corruptPositions++;
      this.warn('corrupt-position', 'undecodable value in the position store; treated as the current primary position');
      session.resync = true; // never "no floor": the current primary position
    } else if (stored !== undefined) {
      session.storedValue = stored;
      this.#mergeFromStore(session, stored);
    }
    if (lost) {
      this.#mergeFromStore(session, lost.position);
      this.#mergedLost.set(session, lost);
    }
  }

  /** Merges a position the store holds (or was to hold) into a loading session. */
  #mergeFromStore(session: Session, position: StoredPosition): void {
    if (!session.merge(this.#local(position), this.monitor.primaryIdentity(), performance.now())) {
      this.counters.foreignPositions++;
      this.warn('foreign-position', 'position of another PostgreSQL system in the store; treated as the current primary position', {
        systemId: position.systemId,
      });
      session.resync = true;
    }
  }

  /**
   * Stores the session's position under `key` (its own, or a new key after a login) at the end
   * of its scope: positions its writes first, covers its reads on the primary when a primary
   * position taken after them is known, and skips the write when nothing changed.
   */
  persist(session: Session, key = session.key): Promise<void> {
    return this.persistNow(session, key) ?? DONE;
  }

  /** {@link persist}; undefined when nothing was pending and nothing changed (decided in this turn, without a promise). */
  persistNow(session: Session, key = session.key): Promise<void> | undefined {
    if (key === undefined) return undefined;
    if (session.writePending || (session.resync && session.wrote)) return this.#positionThenStore(session, key);
    return this.#store(session, key);
  }

  async #positionThenStore(session: Session, key: string): Promise<void> {
    try {
      await this.primary.positionSession(session);
    } catch {
      this.counters.positionErrors++;
      session.positionUnknown(performance.now());
    }
    await this.#store(session, key);
  }

  /** The session's position stored under `key` if it changed (see {@link persist}); undefined when it did not. */
  #store(session: Session, key: string): Promise<void> | undefined {
    // Reads on the primary, not yet covered. Stored as "primary", the next request could only
    // cover them with a position taken after it loads them: one no lagging replica has reached,
    // so a busy session would never get back to the replicas. So they are covered with a primary
    // position taken after them: now, if one is already known (free); otherwise the position is
    // stored as is (safe) and covered once a sample arrives, off the request's path.
    let coverLater = false;
    if (session.uncovered === 'primary' && !session.floorUnknown && this.monitor.state('primary')?.status !== 'down') {
      const known = this.monitor.primarySampleSince(session.lastReadEndedAt);
      if (known) session.cover(known, this.monitor.primaryIdentity());
      else coverLater = key === session.key;
    }
    if (session.unstamped) session.stamp(this.monitor.primaryIdentity()); // its reads ran in today's history
    const loaded = key === session.key ? session.storedValue : undefined;
    let next = this.#shared(session.position());
    // Another request of this session may have read on the replica we loaded (staying there is
    // free, so it stores nothing), after any sample we took: keep that replica among the uncovered
    // ones. A loaded list or "primary" needs no such care: a request that loaded it covers it
    // before reading a replica, and so stores what it did itself.
    if (loaded?.node !== undefined && next.node !== loaded.node && this.isReplica(this.monitor.nodeOfServer(loaded.node) ?? '')) {
      next = { ...next, node: unionNode(next.node, loaded.node) };
    }
    // Reads on the primary that could not be covered are always stored (merged with whatever a
    // concurrent request of the session stored), even if the value looks unchanged.
    const unchanged = loaded !== undefined ? samePosition(next, loaded) : next.lsn === 0n && next.node === undefined;
    if (unchanged && next.node !== 'primary') return undefined;
    // A fresh version names this copy: a later raise of this session (its cover) replaces it only
    // while it is still stored, never an equal value another request stored meanwhile.
    next = withVersion(next, newVersion());
    this.counters.storeWrites++;
    return this.#raise(session, key, next, loaded, coverLater);
  }

  async #raise(
    session: Session,
    key: string,
    next: StoredPosition,
    loaded: StoredPosition | undefined,
    coverLater: boolean,
  ): Promise<void> {
    try {
      await this.store.raise(key, next, loaded);
      if (key === session.key) {
        session.storedValue = next; // what a second raise compares against
        const lost = this.#mergedLost.get(session);
        if (lost) this.#lost.carried(key, lost); // stored now: `next` holds what was lost
        this.#mergedLost.delete(session);
      }
      if (coverLater) this.#covers.cover(session, key, next);
    } catch (err) {
      // Timed out, refused, or not sent (circuit open): `next` may be missing from the store.
      // Only this key lost it, and exactly it: its next load here merges it.
      this.counters.storeErrors++;
      this.#lost.record(key, next);
      throw err;
    }
  }

  /** A position for outside this process: its uncovered reads named by server ids (lib/server-ids.ts). */
  #shared(position: StoredPosition): StoredPosition {
    return { ...position, node: toShared(position.node, (name) => this.monitor.serverIdOf(name)) };
  }

  /** A position from outside: server ids turned into our names for those servers. */
  #local(position: StoredPosition): StoredPosition {
    return { ...position, node: toLocal(position.node, (id) => this.monitor.nodeOfServer(id)) };
  }

  /** Waits for background work (covers of stored positions). */
  drain(): Promise<void> {
    return this.#covers.drain();
  }
}
