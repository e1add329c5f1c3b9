import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Backends, signalledPid, type BackendHolder } from '../../lib/backends.js';
import type { NodeConnectionPool, NodePool } from '../../lib/nodes.js';

// Where a signal by pid goes (issue 14, case 12): the pure part of the routing of
// `select pg_cancel_backend(pid)`; the classification of those statements is in classifier.test.ts.
function node(name: string): NodePool & { events: EventEmitter } {
  const events = new EventEmitter();
  return { name, role: name === 'primary' ? 'primary' : 'replica', pool: events as unknown as NodeConnectionPool, served: 0, events };
}

const connection = (processID: number) => ({ processID });

describe('Backends.target', () => {
  it('a pid revealed by a checked-out client goes where that client runs now', () => {
    const [primary, r1] = [node('primary'), node('r1')];
    const backends = new Backends([primary, r1]);
    r1.events.emit('connect', connection(100));
    primary.events.emit('connect', connection(200));
    const holder: BackendHolder = { current: () => ({ node: primary, pid: 200 }) };
    backends.reveal(100, holder);
    expect(backends.target(100)).toMatchObject({ node: primary, pid: 200 });
    backends.forget(100, holder);
    expect(backends.target(100)).toMatchObject({ node: r1, pid: 100 });
  });

  it('a pid of one connection goes to its node; on several nodes or none it is refused', () => {
    const [primary, r1, r2] = [node('primary'), node('r1'), node('r2')];
    const backends = new Backends([primary, r1, r2]);
    const shared = connection(300);
    r1.events.emit('connect', shared);
    r2.events.emit('connect', connection(300));
    expect(() => backends.target(300)).toThrow(expect.objectContaining({ code: 'ERR_PGRR_BACKEND_AMBIGUOUS' }));
    r1.events.emit('remove', shared);
    expect(backends.target(300).node).toBe(r2);
    expect(() => backends.target(999)).toThrow(expect.objectContaining({ code: 'ERR_PGRR_BACKEND_UNKNOWN' }));
  });

  it('two clients holding the same pid (on two servers) make it ambiguous', () => {
    const [primary, r1] = [node('primary'), node('r1')];
    const backends = new Backends([primary, r1]);
    backends.reveal(5, { current: () => ({ node: primary, pid: 5 }) });
    backends.reveal(5, { current: () => ({ node: r1, pid: 5 }) });
    expect(() => backends.target(5)).toThrow(expect.objectContaining({ code: 'ERR_PGRR_BACKEND_AMBIGUOUS' }));
  });
});

describe('signalledPid', () => {
  const signal = { fn: 'pg_cancel_backend' as const, pid: { param: 1 }, column: 'pg_cancel_backend' };
  it('reads a literal or a parameter; anything but an integer is not a pid', () => {
    expect(signalledPid({ ...signal, pid: 42 }, undefined)).toBe(42);
    expect(signalledPid(signal, [42])).toBe(42);
    expect(signalledPid(signal, ['42'])).toBe(42);
    expect(signalledPid(signal, [42n])).toBe(42);
    expect(signalledPid(signal, [null])).toBeUndefined();
    expect(signalledPid(signal, ['4x'])).toBeUndefined();
    expect(signalledPid(signal, [4.5])).toBeUndefined();
    expect(signalledPid(signal, [])).toBeUndefined();
  });
});
