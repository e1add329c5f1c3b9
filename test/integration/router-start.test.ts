import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createRouter, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { nodeByPort, urlAs, useRoutedCluster } from '../helpers/cluster.js';

// A new router's start: its first statements wait for the SQL parser and the primary's first poll
// (a floor's WAL history is judged against the primary's), not for the replicas' first polls; a
// checkout waits for nothing, as pg.Pool's does. A replica not polled yet is out of rotation.

let cluster: Cluster;

useRoutedCluster({ cluster: { replicas: 1 } }, (c) => {
  cluster = c;
});

/** A TCP server that accepts connections and never answers (a hung server, or a blackhole). */
async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `connectionString` pointed at `port` on loopback. */
function atPort(connectionString: string, port: number): string {
  const url = new URL(connectionString);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return url.toString();
}

const statusOf = (router: Router, name: string) => router.topology().nodes.find((n) => n.name === name)!.status;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("a router's start", () => {
  it('a replica that never answers holds up no statement: the first ones run on the primary while its first poll is pending', async () => {
    const silent = await silentServer();
    const router = createRouter({
      primary: { connectionString: urlAs(cluster.primary) },
      replicas: [{ name: 'r1', connectionString: atPort(urlAs(cluster.replicas[0]!), silent.port) }],
      monitor: { intervalMs: 100, timeoutMs: 5_000 },
    });
    cleanups.push(() => router.close(), silent.close); // the server goes first: the pending poll fails

    const { rows } = await router.withConsistency('eventual', () => router.query('select inet_server_port() as port'));
    expect(nodeByPort(cluster, rows[0]!.port)).toBe('primary');
    // Still waiting for r1's first answer (10 s connect timeout): the statement did not wait for it.
    expect(statusOf(router, 'r1')).toBe('unknown');
    expect(statusOf(router, 'primary')).toBe('up');
  });

  it('a checkout right after createRouter() waits for no poll: a primary that never answers fails it on connectionTimeoutMillis', async () => {
    const silent = await silentServer();
    const router = createRouter({
      primary: { connectionString: atPort(urlAs(cluster.primary), silent.port), connectionTimeoutMillis: 100 },
      replicas: [],
      monitor: { intervalMs: 100, timeoutMs: 5_000 },
    });
    cleanups.push(() => router.close(), silent.close); // the server goes first: the pending poll fails

    await expect(router.pool.connect()).rejects.toThrow(/timeout/);
    // The monitor's first poll of the primary is still pending: the checkout did not wait for it.
    expect(statusOf(router, 'primary')).toBe('unknown');
    expect(router.pool.totalCount).toBe(0);
  });

  it('a checkout before the start gets the primary, and its first read moves it to a replica ready by then', async () => {
    const router = createRouter({
      primary: { connectionString: urlAs(cluster.primary) },
      replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!) }],
      monitor: { intervalMs: 100 },
    });
    cleanups.push(() => router.close());

    const client = await router.pool.connect();
    try {
      expect(client.node).toBe('primary'); // nothing judged yet: no replica is in rotation
      await engineOf(router)!.monitor.ready; // r1's first poll
      const { rows } = await router.withConsistency('eventual', () => client.query('select inet_server_port() as port'));
      expect(nodeByPort(cluster, rows[0]!.port)).toBe('r1');
      expect(client.node).toBe('r1');
      expect(client.processID).toEqual(expect.any(Number));
    } finally {
      client.release();
    }
    expect(router.pool.totalCount).toBe(2); // the primary's connection went back to its pool
    expect(router.pool.idleCount).toBe(2);
  });
});
