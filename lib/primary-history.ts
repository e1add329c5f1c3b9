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

  /**
   * How fresh a replica is that had replayed `replayLsn` when asked at `sampledAt`, from the
   * primary's positions alone (readable by any role, whatever the WAL receiver does):
   * - `freshAt`: everything the primary wrote before this moment is replayed there: the latest
   *   time the primary was seen at or below `replayLsn`. With no such sample kept, `replayedAt`
   *   (when the replica's last replayed commit was made), but never later than the oldest sample.
   * - `lagMs`: its replay lag when asked: 0 when it had replayed the primary's position asked for
   *   before `sampledAt`; otherwise `sampledAt - freshAt` (at least the time it is behind by).
   */
  freshness(replayLsn: Lsn, sampledAt: number, replayedAt: number | undefined): { freshAt: number | undefined; lagMs: number | undefined } {
    let seenBelow: number | undefined;
    let before: PositionSample | undefined;
    let oldest: number | undefined;
    for (const sample of this.#samples) {
      if (sample.lsn <= replayLsn && (seenBelow === undefined || sample.sentAt > seenBelow)) seenBelow = sample.sentAt;
      if (sample.sentAt <= sampledAt && (before === undefined || sample.sentAt > before.sentAt)) before = sample;
      if (oldest === undefined || sample.sentAt < oldest) oldest = sample.sentAt;
    }
    let freshAt = seenBelow;
    if (freshAt === undefined && replayedAt !== undefined) freshAt = oldest === undefined ? replayedAt : Math.min(replayedAt, oldest);
    if (before !== undefined && replayLsn >= before.lsn) return { freshAt, lagMs: 0 };
    return { freshAt, lagMs: freshAt === undefined ? undefined : Math.max(0, Math.round(sampledAt - freshAt)) };
  }
}
