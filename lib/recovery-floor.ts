import type { Lsn } from './lsn.js';
import type { MonitorView } from './monitor-view.js';
import type { PrimaryPositions } from './primary-position.js';

/**
 * The floor every load is raised to after the store may have lost positions it acknowledged (it
 * said so, or this process could not keep a failed write): the primary's position observed after
 * the last such moment. Costs nothing until a loss; then one sample, shared by concurrent loads
 * (free when the monitor already holds one taken after it).
 */
export class RecoveryFloor {
  /** The floor; 0n until a loss. */
  lsn: Lsn = 0n;
  /** `performance.now()` of the last sign of loss (positions may be missing since). */
  #lostAt = -Infinity;
  /** When the current floor was sampled (request sent). */
  #sampledAt = -Infinity;
  #sampling: { promise: Promise<void>; sentAt: number } | undefined;

  constructor(
    readonly primary: PrimaryPositions,
    readonly monitor: MonitorView,
  ) {}

  /** Positions may be missing from now on. */
  lost(): void {
    this.#lostAt = performance.now();
  }

  /** A loss happened after the floor was sampled: loads must {@link sample} before they use it. */
  get stale(): boolean {
    return this.#lostAt > this.#sampledAt;
  }

  /** Raises the floor to a primary position observed after the last loss. */
  async sample(): Promise<void> {
    const known = this.monitor.primarySampleSince(this.#lostAt);
    if (known) {
      this.#raise(known.lsn, known.sentAt);
      return;
    }
    if (!this.#sampling || this.#sampling.sentAt < this.#lostAt) {
      const sentAt = performance.now();
      const promise = this.primary
        .read()
        .then(({ lsn }) => this.#raise(lsn, sentAt))
        .finally(() => {
          if (this.#sampling?.promise === promise) this.#sampling = undefined;
        });
      this.#sampling = { promise, sentAt };
    }
    await this.#sampling.promise;
  }

  #raise(lsn: Lsn, sentAt: number): void {
    if (lsn > this.lsn) this.lsn = lsn;
    if (sentAt > this.#sampledAt) this.#sampledAt = sentAt;
  }
}
