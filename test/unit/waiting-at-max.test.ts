// waitingAtMax: the primary waits at max as pg.Pool does (past the router's own wait bound it asks
// again), until the monitor has it down; replicas and user-set bounds fail as pg's. Pure logic.
import { describe, expect, it } from 'vitest';
import { waitingAtMax, type NodePool } from '../../lib/nodes.js';

const FULL = 'timeout exceeded when trying to connect';
const node = (role: 'primary' | 'replica', ownWaitBound: boolean, down = false): NodePool =>
  ({ name: role, role, pool: {} as NodePool['pool'], served: 0, ownWaitBound, isDown: () => down }) as NodePool;

/** A send that fails `fullTimes` times with a full pool's error, then answers. */
function sender(fullTimes: number) {
  let calls = 0;
  const send = () => (++calls <= fullTimes ? Promise.reject(new Error(FULL)) : Promise.resolve('connected'));
  return { send, calls: () => calls };
}

describe('waitingAtMax', () => {
  it('on the primary with the router’s own bound, a full pool’s timeout means: wait again', async () => {
    const s = sender(3);
    await expect(waitingAtMax(node('primary', true), s.send)).resolves.toBe('connected');
    expect(s.calls()).toBe(4);
  });

  it('not once the monitor has the primary down, nor on a replica, nor past the user’s own bound', async () => {
    for (const n of [node('primary', true, true), node('replica', true), node('primary', false)]) {
      const s = sender(3);
      await expect(waitingAtMax(n, s.send)).rejects.toThrow(FULL);
      expect(s.calls()).toBe(1);
    }
  });

  it('any other error (the server cannot be reached) fails at once', async () => {
    let calls = 0;
    const send = () => (calls++, Promise.reject(new Error('connect ECONNREFUSED')));
    await expect(waitingAtMax(node('primary', true), send)).rejects.toThrow('ECONNREFUSED');
    expect(calls).toBe(1);
  });
});
