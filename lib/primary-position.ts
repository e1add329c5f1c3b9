import type { Counters } from './counters.js';
import { parseLsn } from './lsn.js';
import type { MonitorView } from './monitor-view.js';
import type { NodeConnectionPool } from './nodes.js';
import { PRIMARY_POSITION_SQL } from './position-sql.js';
import type { PositionSample, Session } from './session.js';

/** Reads the primary's position on the application's primary pool: the one place this is done. */
export class PrimaryPositions {
  constructor(
    readonly pool: Pick<NodeConnectionPool, 'query'>,
    readonly monitor: MonitorView,
    readonly counters: Counters,
  ) {}

  /** The primary's insert LSN now (one round trip), also kept by the monitor to date floors. */
  async read(): Promise<PositionSample> {
    const sentAt = performance.now();
    this.counters.positionReads++;
    const { rows } = await this.pool.query<{ lsn: string }>(PRIMARY_POSITION_SQL);
    const lsn = parseLsn(rows[0]!.lsn);
    this.monitor.notePrimaryPosition(lsn, sentAt);
    return { lsn, sentAt };
  }

  /**
   * Turns the session's pending write (or resync) into a floor: the primary's position read
   * *after* its writes were acknowledged (and after its earlier reads ended), so at least every
   * commit record they made and ahead of whatever those reads observed. On failure the session
   * keeps what was pending.
   */
  async positionSession(session: Session): Promise<void> {
    const wasPending = session.writePending;
    const wasResync = session.resync;
    session.writePending = false;
    session.resync = false;
    try {
      const sample = await this.read();
      session.applyPrimaryPosition(sample, this.monitor.primaryIdentity(), wasResync);
    } catch (err) {
      session.writePending ||= wasPending;
      session.resync ||= wasResync;
      throw err;
    }
  }
}
