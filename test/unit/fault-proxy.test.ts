import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyNode, startFaultProxy, type FaultProxy } from '../../lib/testing/fault-proxy.js';
import { freePort } from '../../lib/testing/processes.js';

// The fault proxy in front of an echo server (no database): what each mode does to open and new
// connections.
let echo: Server;
let echoPort: number;
const serverSockets = new Set<Socket>();

beforeAll(async () => {
  echo = createServer((socket) => {
    serverSockets.add(socket);
    socket.on('close', () => serverSockets.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', () => resolve()));
  echoPort = (echo.address() as { port: number }).port;
});

afterAll(async () => {
  for (const socket of serverSockets) socket.destroy();
  await new Promise((resolve) => echo.close(resolve));
});

/** A client connection to the proxy that collects what it receives and how it ended. */
interface Probe {
  socket: Socket;
  received: () => string;
  ended: Promise<string>;
}

async function probe(proxy: FaultProxy): Promise<Probe> {
  const socket = connect({ host: proxy.host, port: proxy.port });
  let data = '';
  socket.on('data', (chunk) => (data += chunk.toString()));
  const ended = new Promise<string>((resolve) => {
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    socket.on('close', () => resolve('closed'));
  });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, received: () => data, ended };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('fault proxy', () => {
  it('pass forwards both ways on the loopback interface', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    try {
      expect(proxy.host).toBe('127.0.0.1');
      expect(proxy.mode).toBe('pass');
      const p = await probe(proxy);
      p.socket.write('hello');
      await until(() => p.received() === 'hello');
      expect(proxy.connections).toBe(1);
      p.socket.destroy();
      await until(() => proxy.connections === 0);
    } finally {
      await proxy.close();
    }
  });

  it('blackhole answers nothing on open or new connections and closes none; pass delivers what was held', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    try {
      const open = await probe(proxy);
      open.socket.write('a');
      await until(() => open.received() === 'a');
      proxy.setMode('blackhole');
      open.socket.write('b');
      // A new connection is accepted (the connect succeeds) but never reaches the target.
      const before = serverSockets.size;
      const fresh = await probe(proxy);
      fresh.socket.write('c');
      await sleep(300);
      expect(open.received()).toBe('a');
      expect(fresh.received()).toBe('');
      expect(serverSockets.size).toBe(before);
      expect(open.socket.destroyed || fresh.socket.destroyed).toBe(false);
      expect(proxy.connections).toBe(2);
      // Healed: held bytes go through, both ways.
      proxy.setMode('pass');
      await until(() => open.received() === 'ab' && fresh.received() === 'c');
      open.socket.destroy();
      fresh.socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  it('refuse resets open connections and every new one', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    try {
      const open = await probe(proxy);
      open.socket.write('x');
      await until(() => open.received() === 'x');
      proxy.setMode('refuse');
      expect(await open.ended).toMatch(/ECONNRESET|closed/);
      expect(proxy.connections).toBe(0);
      const socket = connect({ host: proxy.host, port: proxy.port });
      const outcome = await new Promise<string>((resolve) => {
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        socket.on('close', () => resolve('closed'));
      });
      expect(outcome).toMatch(/ECONNRESET|closed/);
      // and back
      proxy.setMode('pass');
      const again = await probe(proxy);
      again.socket.write('y');
      await until(() => again.received() === 'y');
      again.socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  it('close() destroys every connection, also blackholed ones, and stops listening', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort }, { mode: 'blackhole' });
    const held = await probe(proxy);
    await proxy.close();
    expect(await held.ended).toMatch(/ECONNRESET|closed/);
    expect(proxy.connections).toBe(0);
    await proxy.close(); // twice is fine
    const socket = connect({ host: proxy.host, port: proxy.port });
    const outcome = await new Promise<string>((resolve) => socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? '')));
    expect(outcome).toBe('ECONNREFUSED');
  });

  it('a target that is down: the client connection is closed', async () => {
    const port = await freePort(); // nothing listens on it
    const proxy = await startFaultProxy({ host: '127.0.0.1', port });
    try {
      const p = await probe(proxy);
      expect(await p.ended).toMatch(/ECONNRESET|closed/);
    } finally {
      await proxy.close();
    }
  });

  it('proxyNode points a node connection string at its proxy, keeping user, database and parameters', async () => {
    const node = {
      host: '127.0.0.1',
      port: echoPort,
      connectionString: `postgresql://app:secret@127.0.0.1:${echoPort}/db?sslmode=disable`,
    };
    const { proxy, connectionString } = await proxyNode(node);
    try {
      expect(connectionString).toBe(`postgresql://app:secret@127.0.0.1:${proxy.port}/db?sslmode=disable`);
      expect(proxy.target).toEqual({ host: '127.0.0.1', port: echoPort });
    } finally {
      await proxy.close();
    }
    const redis = await proxyNode({ host: '127.0.0.1', port: echoPort, url: `redis://127.0.0.1:${echoPort}` });
    await redis.proxy.close();
    expect(redis.connectionString).toBe(`redis://127.0.0.1:${redis.proxy.port}`);
  });

  it('bad arguments get a clear error', async () => {
    await expect(startFaultProxy({ host: '127.0.0.1', port: 0 })).rejects.toThrow(/target must be/);
    await expect(startFaultProxy({ host: '127.0.0.1', port: echoPort }, { mode: 'drop' as never })).rejects.toThrow(/mode must be/);
    await expect(proxyNode({ host: '127.0.0.1', port: echoPort })).rejects.toThrow(/connectionString/);
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
    expect(() => proxy.setMode('nope' as never)).toThrow(/mode must be/);
    await proxy.close();
  });
});
