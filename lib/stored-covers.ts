import type { Counters } from './counters.js';
import type { MonitorView } from './monitor-view.js';
import { newVersion, withVersion, type StoredPosition } from './position.js';
import type { Session } from './session.js';
import type { GuardedStore } from './stores/guard.js';

/**
 * Stored positions whose reads on the primary could not be covered when their scope ended
 * (`node: 'primary'`): each is replaced, off the request path, by one covered by a primary
 * sample taken after those reads (see `SessionStore.persist`).
 */
export class StoredCovers {
  readonly #background = new Set<Promise<void>>();

  constructor(
    readonly store: GuardedStore,
    readonly monitor: MonitorView,
    readonly counters: Counters,
  ) {}

  /** Covers `stored` (what `session` stored under `key`) once a primary sample after its reads arrives. */
  cover(session: Session, key: string, stored: StoredPosition): void {
    const work = this.#cover(session, key, stored);
    this.#background.add(work);
    void work.finally(() => this.#background.delete(work));
  }

  /** Waits for the covers in flight. */
  async drain(): Promise<void> {
    await Promise.all(this.#background);
  }

  /**
   * Replaces a stored position whose reads on the primary were not covered (`stored`) by one
   * covered by a primary sample taken after them, against `stored`'s version. If the session
   * stored something else meanwhile (even an equal value), the store's merge keeps whatever that
   * request still needs covered.
   */
  async #cover(session: Session, key: string, stored: StoredPosition): Promise<void> {
    try {
      const sample = await this.monitor.sample('primary', session.lastReadEndedAt);
      if (sample.lsn === undefined) return;
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
}
