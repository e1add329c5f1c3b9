import type { Lsn } from './lsn.js';
import type { PositionSample } from './session.js';

/**
 * The primary's recent positions and when each was asked for (the last 64): they date a floor
 * (how long ago it was written) and cover reads on the primary without a new round trip.
 */
export class PrimaryHistory {
  readonly #samples: PositionSample[] = [];

  note(lsn: Lsn, sentAt: number): void {
    this.#samples.push({ lsn, sentAt });
    if (this.#samples.length > 64) this.#samples.shift();
  }

  /** Forgets every sample (the primary restarted or changed history). */
  clear(): void {
    this.#samples.length = 0;
  }

  /**
   * The latest time (`performance.now()`) at which the primary was seen below `lsn`: whatever
   * wrote `lsn` happened after it. Undefined when no recent sample was below it.
   */
  writtenAfter(lsn: Lsn): number | undefined {
    let latest: number | undefined;
    for (const sample of this.#samples) if (sample.lsn < lsn && (latest === undefined || sample.sentAt > latest)) latest = sample.sentAt;
    return latest;
  }

  /**
   * The earliest recent position asked for at or after `since`: the lowest position that still
   * covers everything read on the primary before `since`. Undefined when none is known.
   */
  sampleSince(since: number): PositionSample | undefined {
    let earliest: PositionSample | undefined;
    for (const sample of this.#samples)
      if (sample.sentAt >= since && (earliest === undefined || sample.lsn < earliest.lsn)) earliest = sample;
    return earliest;
  }
}
