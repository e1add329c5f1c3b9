import type { Counters } from './counters.js';
import type { Lsn } from './lsn.js';
import type { MonitorView } from './monitor-view.js';
import { encodePosition, newVersion, unionNode, withVersion, type StoredPosition } from './position.js';
import type { PrimaryPositions } from './primary-position.js';
import { toLocal, toShared } from './server-ids.js';
import type { Session } from './session.js';
import { LostWrites, type LostWrite } from './stores/lost-writes.js';
import type { LsnStore } from './stores/store.js';

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
  #recoveryFloor: Lsn = 0n;
  /** `performance.now()` of the last failed store write or sign of loss (positions may be missing since). */
  #lostAt = -Infinity;
  /** When the current recovery floor was sampled (request sent). */
  #recoverySampledAt = -Infinity;
  #recovering: { promise: Promise<void>; sentAt: number } | undefined;
  readonly #background = new Set<Promise<void>>();
  /** Positions this process failed to store, per key; one pushed out is a loss of unknown keys. */
  readonly #lost: LostWrites;
  /** The lost positions a session merged at its load (its successful raise carries them). */
  readonly #mergedLost = new WeakMap<Session, LostWrite>();

  constructor(
    readonly store: LsnStore,
    readonly primary: PrimaryPositions,
    readonly monitor: MonitorView,
    /** Whether a node name is one of this router's replicas. */
    readonly isReplica: (name: string) => boolean,
    readonly counters: Counters,
    readonly warn: Warn,
    /** How many keys' failed writes are kept before falling back to a global floor. */
    lostCapacity?: number,
  ) {
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
    this.#lostAt = performance.now();
  }

  /** Loads the stored position once per session (shared by concurrent reads). */
  ensureLoaded(session: Session): Promise<void> {
    if (session.key === undefined) return Promise.resolve();
    session.loading ??= this.#load(session);
    return session.loading;
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
      // Positions may have been lost (a store that reconnected or restarted, a failed write this
      // process could not keep): not below the primary's position observed after the last such moment.
      if (this.#lostAt > this.#recoverySampledAt) await this.#sampleRecoveryFloor();
      session.raise(this.#recoveryFloor);
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
    } catch {
      this.counters.storeErrors++;
      session.storeOutcome = 'unavailable';
      session.floorUnknown = true; // fail safe: reads that need a floor go to the primary
    }
    session.loaded = true;
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
   * A primary position observed after the last loss, raising `#recoveryFloor`: one the monitor
   * already holds (free), else one read (shared by concurrent loads).
   */
  async #sampleRecoveryFloor(): Promise<void> {
    const known = this.monitor.primarySampleSince(this.#lostAt);
    if (known) {
      this.#raiseRecoveryFloor(known.lsn, known.sentAt);
      return;
    }
    if (!this.#recovering || this.#recovering.sentAt < this.#lostAt) {
      const sentAt = performance.now();
      const promise = this.primary
        .read()
        .then(({ lsn }) => this.#raiseRecoveryFloor(lsn, sentAt))
        .finally(() => {
          if (this.#recovering?.promise === promise) this.#recovering = undefined;
        });
      this.#recovering = { promise, sentAt };
    }
    await this.#recovering.promise;
  }

  #raiseRecoveryFloor(lsn: Lsn, sentAt: number): void {
    if (lsn > this.#recoveryFloor) this.#recoveryFloor = lsn;
    if (sentAt > this.#recoverySampledAt) this.#recoverySampledAt = sentAt;
  }

  /**
   * Stores the session's position under `key` (its own, or a new key after a login) at the end
   * of its scope: positions its writes first, covers its reads on the primary when a primary
   * position taken after them is known, and skips the write when nothing changed.
   */
  async persist(session: Session, key = session.key): Promise<void> {
    if (key === undefined) return;
    if (session.writePending || (session.resync && session.wrote)) {
      try {
        await this.primary.positionSession(session);
      } catch {
        this.counters.positionErrors++;
        session.positionUnknown(performance.now());
      }
    }
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
    const unchanged = loaded !== undefined ? encodePosition(next) === encodePosition(loaded) : next.lsn === 0n && next.node === undefined;
    if (unchanged && next.node !== 'primary') return;
    // A fresh version names this copy: a later raise of this session (its cover) replaces it only
    // while it is still stored, never an equal value another request stored meanwhile.
    next = withVersion(next, newVersion());
    this.counters.storeWrites++;
    try {
      await this.store.raise(key, next, loaded);
      if (key === session.key) {
        session.storedValue = next; // what a second raise compares against
        const lost = this.#mergedLost.get(session);
        if (lost) this.#lost.carried(key, lost); // stored now: `next` holds what was lost
        this.#mergedLost.delete(session);
      }
      if (coverLater) this.#track(this.#coverStored(session, key, next));
    } catch (err) {
      // Timed out, refused, or not sent (circuit open): `next` may be missing from the store.
      // Only this key lost it, and exactly it: its next load here merges it.
      this.counters.storeErrors++;
      this.#lost.record(key, next);
      throw err;
    }
  }

  /**
   * Replaces a stored position whose reads on the primary were not covered (`stored`) by one
   * covered by a primary sample taken after them, against `stored`'s version. If the session
   * stored something else meanwhile (even an equal value), the store's merge keeps whatever that
   * request still needs covered.
   */
  async #coverStored(session: Session, key: string, stored: StoredPosition): Promise<void> {
    try {
      const sample = await this.monitor.sample('primary', session.lastReadEndedAt);
      if (sample.lsn === undefined) return;
      this.counters.positionReads++;
      const ours = this.monitor.primaryIdentity();
      const covered = withVersion(
        {
          lsn: sample.lsn > stored.lsn ? sample.lsn : stored.lsn,
          node: undefined,
          systemId: ours.systemId ?? stored.systemId,
          timeline: ours.timeline ?? stored.timeline,
        },
        newVersion(),
      );
      if (covered.systemId !== stored.systemId || covered.timeline !== stored.timeline) return; // a failover meanwhile: leave it to the next load
      this.counters.storeWrites++;
      await this.store.raise(key, covered, stored);
    } catch {
      this.counters.storeErrors++; // "primary" stays stored: safe
    }
  }

  #track(work: Promise<void>): void {
    this.#background.add(work);
    void work.finally(() => this.#background.delete(work));
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
  async drain(): Promise<void> {
    await Promise.all(this.#background);
  }
}
