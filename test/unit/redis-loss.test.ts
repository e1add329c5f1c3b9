// The Redis store's signs of loss (lib/stores/redis-loss.ts), without a server: a client stand-in
// that is an EventEmitter (as ioredis's clients are) and answers INFO from variables.
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { lossWatch } from '../../lib/stores/redis-loss.js';

/** INFO as Redis sends it: `# Section` headers, `name:value` lines ending in CRLF. */
const serverInfo = (runId: string) => `# Server\r\nredis_version:7.2.4\r\nrun_id:${runId}\r\ntcp_port:6379\r\n`;
const replicationInfo = (replId: string) =>
  `# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:${replId}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\n`;

class FakeRedis extends EventEmitter {
  runId = 'a'.repeat(40);
  replId = 'b'.repeat(40);
  infoCalls = 0;
  /** When set, INFO never answers (a store that hangs). */
  hang = false;
  fail = false;

  constructor(readonly isCluster = false) {
    super();
  }

  info(section: string): Promise<string> {
    this.infoCalls++;
    if (this.hang) return new Promise(() => {});
    if (this.fail) return Promise.reject(new Error('connection is closed'));
    return Promise.resolve(section === 'server' ? serverInfo(this.runId) : replicationInfo(this.replId));
  }
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('redis loss watch (server-free)', () => {
  it('every subscriber hears "first use" at once, then each close and Cluster node change', () => {
    const client = new FakeRedis();
    const watch = lossWatch(client, 0);
    const a: string[] = [];
    const b: string[] = [];
    watch((reason) => a.push(reason));
    client.emit('close');
    watch((reason) => b.push(reason));
    client.emit('-node');
    client.emit('+node');
    expect(a).toEqual(['first use', 'redis close', 'redis -node', 'redis +node']);
    expect(b).toEqual(['first use', 'redis -node', 'redis +node']);
    expect(client.infoCalls, 'no identity check with identityCheckMs 0').toBe(0);
  });

  it('the listeners on the client and the timer go with the last subscriber', async () => {
    const client = new FakeRedis();
    const watch = lossWatch(client, 100);
    const heard: string[] = [];
    const first = watch((reason) => heard.push(`1 ${reason}`));
    const second = watch((reason) => heard.push(`2 ${reason}`));
    expect(client.listenerCount('close')).toBe(1); // one handler per event, shared
    first();
    first(); // twice: harmless, and does not unsubscribe the other
    client.emit('close');
    expect(heard).toEqual(['1 first use', '2 first use', '2 redis close']);
    await vi.advanceTimersByTimeAsync(250);
    const calls = client.infoCalls;
    expect(calls).toBeGreaterThan(2); // checks ran while subscribed (two INFO commands each)
    second();
    for (const event of ['close', '-node', '+node']) expect(client.listenerCount(event), event).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(client.infoCalls, 'no check after the last unsubscribe').toBe(calls);
    expect(vi.getTimerCount()).toBe(0);
    // A new subscriber starts it again.
    const third = watch(() => {});
    expect(client.listenerCount('close')).toBe(1);
    third();
  });

  it('a changed run_id or master_replid (read from INFO with CRLF lines) is a loss; an unchanged identity is not', async () => {
    const client = new FakeRedis();
    const heard: string[] = [];
    const unsubscribe = lossWatch(client, 100)((reason) => heard.push(reason));
    await vi.advanceTimersByTimeAsync(350);
    expect(heard).toEqual(['first use']);
    client.runId = 'c'.repeat(40); // restarted
    await vi.advanceTimersByTimeAsync(100);
    expect(heard).toEqual(['first use', 'redis identity changed (run_id or master_replid)']);
    await vi.advanceTimersByTimeAsync(300);
    expect(heard).toHaveLength(2); // the new identity is the one compared against now
    client.replId = 'd'.repeat(40); // made a replica of another and resynchronised
    await vi.advanceTimersByTimeAsync(100);
    expect(heard).toHaveLength(3);
    unsubscribe();
  });

  it('a store that does not answer gets one check in flight, not a queue; a failed check signals nothing', async () => {
    const client = new FakeRedis();
    client.hang = true;
    const heard: string[] = [];
    const unsubscribe = lossWatch(client, 100)((reason) => heard.push(reason));
    await vi.advanceTimersByTimeAsync(1000);
    expect(client.infoCalls).toBe(2); // the first check's two INFO commands, still waiting
    unsubscribe();

    const failing = new FakeRedis();
    failing.fail = true;
    const heardFailing: string[] = [];
    const off = lossWatch(failing, 100)((reason) => heardFailing.push(reason));
    await vi.advanceTimersByTimeAsync(350);
    expect(failing.infoCalls).toBeGreaterThan(2);
    expect(heardFailing).toEqual(['first use']);
    off();
  });

  it('a Cluster gets no identity check (INFO would go to any node), but its node changes are signs', async () => {
    const cluster = new FakeRedis(true);
    const heard: string[] = [];
    const unsubscribe = lossWatch(cluster, 100)((reason) => heard.push(reason));
    await vi.advanceTimersByTimeAsync(500);
    expect(cluster.infoCalls).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    cluster.emit('+node');
    expect(heard).toEqual(['first use', 'redis +node']);
    unsubscribe();
  });

  it("a Cluster's node clients: each connect and close is a sign, for nodes there at subscribe and those added later, until dropped", () => {
    class FakeCluster extends FakeRedis {
      readonly pool: EventEmitter[] = [new EventEmitter()];
      nodes(): EventEmitter[] {
        return this.pool;
      }
    }
    const cluster = new FakeCluster(true);
    const [early] = cluster.pool;
    const heard: string[] = [];
    const unsubscribe = lossWatch(cluster, 0)((reason) => heard.push(reason));
    early!.emit('connect'); // connected lazily, at its first command
    const later = new EventEmitter();
    cluster.emit('+node', later);
    cluster.emit('+node', later); // announced twice: one listener
    later.emit('close'); // reconnects in place (clusterNodeRetryStrategy): no -node
    later.emit('connect');
    expect(heard).toEqual(['first use', 'redis node connect', 'redis +node', 'redis +node', 'redis node close', 'redis node connect']);
    cluster.emit('-node', later); // dropped by the Cluster: its listeners go
    expect(later.listenerCount('close') + later.listenerCount('connect')).toBe(0);
    unsubscribe();
    for (const event of ['connect', 'close']) expect(early!.listenerCount(event), event).toBe(0);
    for (const event of ['+node', '-node', 'close']) expect(cluster.listenerCount(event), event).toBe(0);
    early!.emit('close');
    expect(heard).toHaveLength(7); // the '-node' above, nothing after unsubscribe
  });

  it('a plain client (not a Cluster) does not watch node clients', () => {
    const client = new FakeRedis();
    const node = new EventEmitter();
    const heard: string[] = [];
    const unsubscribe = lossWatch(client, 0)((reason) => heard.push(reason));
    client.emit('+node', node);
    node.emit('close');
    expect(heard).toEqual(['first use', 'redis +node']);
    unsubscribe();
  });

  it('a client without on/off/info (a minimal stand-in) only hears "first use"', () => {
    const heard: string[] = [];
    const unsubscribe = lossWatch({}, 100)((reason) => heard.push(reason));
    expect(heard).toEqual(['first use']);
    expect(vi.getTimerCount()).toBe(0);
    unsubscribe();
  });
});
