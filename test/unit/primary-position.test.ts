// Reads of the primary's position after writes, shared by concurrent scopes (lib/primary-position.ts):
// a read serves a caller only if it was sent at or after the caller asked (after its write was
// acknowledged); one queued read serves everyone who came while the one in flight was too old.
import { describe, expect, it } from 'vitest';
import { newCounters } from '../../lib/counters.js';
import { formatLsn } from '../../lib/lsn.js';
import { PrimaryPositions } from '../../lib/primary-position.js';
import { FakeMonitor } from '../helpers/fake-parts.js';

/** A primary pool whose position reads answer when the test says, with the position at send time. */
function primaryPool() {
  let position = 100n;
  const pending: Array<{ at: bigint; answer: () => void }> = [];
  const pool = {
    query: <R>(): Promise<{ rows: R[] }> =>
      new Promise((resolve) => {
        const at = position; // what the server has written when the read arrives
        pending.push({ at, answer: () => resolve({ rows: [{ lsn: formatLsn(at) } as R] }) });
      }),
  };
  return {
    pool,
    pending,
    write: () => (position += 10n),
    answerNext: async () => {
      pending.shift()!.answer();
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

function positions(pool: ReturnType<typeof primaryPool>['pool']) {
  const counters = newCounters();
  const monitor = new FakeMonitor([{ name: 'primary', role: 'primary', config: {} }]);
  return { positions: new PrimaryPositions(pool as never, monitor, counters, 1000), counters };
}

describe('PrimaryPositions.read: shared by concurrent writers, never older than a caller', () => {
  it('callers that come while a read is in flight and was sent before them share one later read', async () => {
    const server = primaryPool();
    const { positions: p, counters } = positions(server.pool);
    server.write(); // scope A's write is acknowledged (110)
    const a = p.read();
    server.write(); // B and C write after A's read was sent (120, 130)
    server.write();
    const b = p.read();
    const c = p.read();
    expect(server.pending).toHaveLength(1); // B and C do not get a read of their own yet
    await server.answerNext(); // A's read answers 110: too old for B and C
    expect((await a).lsn).toBe(110n);
    expect(server.pending).toHaveLength(1); // one read for both, sent after they asked
    await server.answerNext();
    expect((await b).lsn).toBe(130n);
    expect((await c).lsn).toBe(130n);
    expect(counters.positionReads).toBe(2);
  });

  it('a caller that asks after a read was sent never gets that read', async () => {
    const server = primaryPool();
    const { positions: p } = positions(server.pool);
    const first = p.read();
    server.write(); // acknowledged after `first` was sent
    const mine = p.read();
    await server.answerNext();
    await first;
    await server.answerNext();
    expect((await mine).lsn).toBe(110n); // past the write
  });

  it('callers that ask together while nothing is in flight share one read', async () => {
    const server = primaryPool();
    const { positions: p, counters } = positions(server.pool);
    server.write();
    const first = p.read();
    const reads = [first, ...Array.from({ length: 9 }, () => p.read(performance.now() - 1))];
    expect(server.pending).toHaveLength(1);
    await server.answerNext();
    for (const read of reads) expect((await read).lsn).toBe(110n);
    expect(counters.positionReads).toBe(1);
  });
});
