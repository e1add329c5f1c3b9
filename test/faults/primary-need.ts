// Which failed reads of a drill could a replica have served? Replays each session's history to
// tell the reads that may have needed the primary (down in the drill) from those that did not.
import type { Failure, Op } from '../workload/history.js';

/**
 * The reads that failed while the primary was down or unreachable (`whileDown`) although their session did not
 * need the primary. A session's position changes only through its own operations and the tokens
 * handed to it, so replaying each session's operations in order tells whether, at a given read,
 * its position may require the primary (may: a primary sample taken just before the primary
 * stopped can have covered it):
 * - an acknowledged read on a replica: the router used a replica, so nothing needed the primary
 *   then; the session's node is now that replica (still up) — no;
 * - an acknowledged read on the primary: stored as "read on the primary" until a primary sample,
 *   taken right after the request and off its path, covers it (not if the primary stopped first) — may;
 * - a write that ended after the stop began: its position may not have been read ("primary") —
 *   may; an earlier one is merged into what the store held: no change;
 * - a failed write: one that never reached a server (`reachedNoServer`: refused, not connected),
 *   no change; any other may have committed — may;
 * - a token handed over from a write that ended after the stop began may say "primary" — may; an
 *   earlier one only raises the floor to a position the primary had, which every replica received
 *   before the primary exited (it sends all its WAL first);
 * - a failed read: no change;
 * - before the session's first operation of the run: unknown — may.
 */
export function readsFailedWithoutNeedingThePrimary(
  history: readonly Op[],
  failures: readonly Failure[],
  {
    stopping,
    whileDown,
    reachedNoServer,
  }: {
    /** When the fault began (performance.now()). */
    stopping: number;
    whileDown: (op: { start: number; end: number }) => boolean;
    /** A failed write that cannot have reached the primary (refused, never connected). */
    reachedNoServer: (f: Failure) => boolean;
  },
): Failure[] {
  const writeEnds = new Map(history.filter((op) => op.kind === 'write').map((op) => [`${op.row}#${op.version}`, op.end]));
  type Step = { op: Op; failed?: undefined } | { op: Failure; failed: true };
  const bySession = new Map<string, Step[]>();
  for (const step of [...history.map((op): Step => ({ op })), ...failures.map((op): Step => ({ op, failed: true }))]) {
    bySession.set(step.op.session, [...(bySession.get(step.op.session) ?? []), step]);
  }
  const unexplained: Failure[] = [];
  for (const steps of bySession.values()) {
    // A session runs one operation at a time; a hand-off is recorded just before its read.
    steps.sort((a, b) => a.op.start - b.op.start || (a.op.kind === 'handoff' ? -1 : b.op.kind === 'handoff' ? 1 : 0));
    let mayNeedPrimary = true;
    for (const step of steps) {
      if (step.failed) {
        const failure = step.op;
        if (failure.kind === 'write' && !reachedNoServer(failure)) mayNeedPrimary = true;
        if (failure.kind === 'read' && whileDown(failure) && !mayNeedPrimary) unexplained.push(failure);
        continue;
      }
      const op = step.op;
      if (op.kind === 'read') mayNeedPrimary = op.node === 'primary';
      else if (op.kind === 'write') mayNeedPrimary ||= op.end >= stopping;
      else mayNeedPrimary ||= (writeEnds.get(`${op.row}#${op.version}`) ?? Infinity) >= stopping; // a hand-off
    }
  }
  return unexplained;
}
