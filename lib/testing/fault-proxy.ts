import { connect, createServer, type Server, type Socket } from 'node:net';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { freePort } from './processes.js';

/**
 * What a {@link FaultProxy} does with its connections:
 *
 * - `pass`: forwards bytes both ways (bytes held while blackholed are delivered now, as TCP
 *   delivers them once a partition heals).
 * - `blackhole`: a partition, or a host that hangs. New connections are accepted and kept open
 *   but never reach the target; on every connection nothing is forwarded in either direction and
 *   nothing is answered. No connection is closed, so a client only notices through its own
 *   timeouts.
 * - `refuse`: a host that is gone. Every open connection is reset (both sides), and each new one
 *   is reset as soon as it is accepted (the client sees `ECONNRESET` or "Connection terminated").
 */
export type FaultMode = 'pass' | 'blackhole' | 'refuse';

/** Where a proxy forwards to. */
export interface ProxyTarget {
  readonly host: string;
  readonly port: number;
}

/**
 * A TCP proxy on the loopback interface in front of one server, for fault drills: it can drop
 * into a partition (`blackhole`) or refuse connections, and back, at any moment. Made by
 * {@link startFaultProxy} or {@link proxyNode}.
 */
export interface FaultProxy {
  /** Always `127.0.0.1`: the proxy listens on the loopback interface only. */
  readonly host: string;
  /** The port it listens on. */
  readonly port: number;
  readonly target: ProxyTarget;
  /** The current mode; see {@link FaultMode}. */
  readonly mode: FaultMode;
  /** Client connections open now. */
  readonly connections: number;
  /** Client connections accepted since the start (including refused ones). */
  readonly accepted: number;
  /** Switches the mode, for open connections as well as new ones. Takes effect at once. */
  setMode(mode: FaultMode): void;
  /** Stops listening and destroys every connection, both sides. Safe to call twice. */
  close(): Promise<void>;
}

const MODES: readonly FaultMode[] = ['pass', 'blackhole', 'refuse'];

/** One accepted client connection and, once it reached the target, its upstream connection. */
interface Link {
  readonly client: Socket;
  upstream: Socket | undefined;
}

class Proxy implements FaultProxy {
  readonly host = '127.0.0.1';
  #mode: FaultMode;
  readonly #links = new Set<Link>();
  #accepted = 0;
  #closed: Promise<void> | undefined;

  constructor(
    readonly server: Server,
    readonly port: number,
    readonly target: ProxyTarget,
    mode: FaultMode,
  ) {
    this.#mode = mode;
    server.on('connection', (socket) => this.#accept(socket));
  }

  get mode(): FaultMode {
    return this.#mode;
  }

  get connections(): number {
    return this.#links.size;
  }

  get accepted(): number {
    return this.#accepted;
  }

  setMode(mode: FaultMode): void {
    if (!MODES.includes(mode))
      throw new ReplicaRouterError(
        ErrorCodes.INVALID_OPTION,
        `fault proxy: mode must be 'pass', 'blackhole' or 'refuse', got ${JSON.stringify(mode)}`,
      );
    this.#mode = mode;
    for (const link of [...this.#links]) {
      if (mode === 'refuse') this.#reset(link);
      else if (mode === 'blackhole') this.#hold(link);
      else this.#flow(link);
    }
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const link of [...this.#links]) this.#drop(link);
    });
    return this.#closed;
  }

  #accept(client: Socket): void {
    this.#accepted++;
    const link: Link = { client, upstream: undefined };
    client.on('error', () => this.#drop(link));
    client.on('close', () => this.#drop(link));
    if (this.#closed || this.#mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    this.#links.add(link);
    client.pause(); // nothing is read until there is somewhere to send it
    if (this.#mode === 'pass') this.#flow(link);
  }

  /** Forwards both ways, opening the upstream connection first if there is none yet. */
  #flow(link: Link): void {
    if (!link.upstream) {
      const upstream = connect({ host: this.target.host, port: this.target.port });
      link.upstream = upstream;
      upstream.pause();
      upstream.on('error', () => this.#drop(link));
      upstream.on('close', () => this.#drop(link));
      this.#forward(link.client, upstream);
      this.#forward(upstream, link.client);
      upstream.once('connect', () => {
        if (this.#mode === 'pass') this.#flow(link);
      });
      return;
    }
    if (link.upstream.connecting) return; // resumed on 'connect'
    link.client.resume();
    link.upstream.resume();
  }

  /** Forwards `from` to `to` while the mode is `pass`, with backpressure; holds bytes otherwise. */
  #forward(from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (this.#mode !== 'pass') {
        // Read just before a switch to blackhole: keep it for when the partition heals.
        from.pause();
        from.unshift(chunk);
        return;
      }
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (this.#mode === 'pass') from.resume();
    });
    from.on('end', () => to.end());
  }

  #hold(link: Link): void {
    link.client.pause();
    link.upstream?.pause();
  }

  #reset(link: Link): void {
    this.#links.delete(link);
    if (!link.client.destroyed) link.client.resetAndDestroy();
    if (link.upstream && !link.upstream.destroyed) link.upstream.resetAndDestroy();
  }

  #drop(link: Link): void {
    this.#links.delete(link);
    link.client.destroy();
    link.upstream?.destroy();
  }
}

/**
 * Starts a {@link FaultProxy} on a free loopback port that forwards to `target`.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { startFaultProxy } from 'pg-replica-router/testing';
 *
 * const proxy = await startFaultProxy({ host: '127.0.0.1', port: 5432 });
 * const pool = new pg.Pool({ host: proxy.host, port: proxy.port, user: 'postgres' });
 * proxy.setMode('blackhole'); // queries now hang until a timeout of the client's own
 * proxy.setMode('pass');      // and go on (held bytes are delivered)
 * await proxy.close();
 * ```
 */
export async function startFaultProxy(target: ProxyTarget, options: { mode?: FaultMode } = {}): Promise<FaultProxy> {
  const mode = options.mode ?? 'pass';
  if (!MODES.includes(mode))
    throw new ReplicaRouterError(
      ErrorCodes.INVALID_OPTION,
      `fault proxy: mode must be 'pass', 'blackhole' or 'refuse', got ${JSON.stringify(mode)}`,
    );
  if (typeof target?.host !== 'string' || !Number.isInteger(target.port) || target.port < 1 || target.port > 65_535) {
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `fault proxy: target must be { host, port }, got ${JSON.stringify(target)}`);
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const server = createServer({ pauseOnConnect: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      // Taken between freePort() and listen(): try another.
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 5) continue;
      throw err;
    }
    server.on('error', () => {}); // after listening, errors belong to connections
    return new Proxy(server, port, { host: target.host, port: target.port }, mode);
  }
}

/** A cluster node (or Redis) as the proxy needs it: its address and how clients reach it. */
export interface ProxiedEndpoint {
  readonly host: string;
  readonly port: number;
  /** A `postgresql://` (or `redis://`) URL naming `host:port`; `url` is used when this is absent. */
  readonly connectionString?: string;
  readonly url?: string;
}

/**
 * Puts a {@link FaultProxy} in front of one cluster node (a `NodeHandle`, or a `RedisHandle`)
 * and returns it with the node's connection string pointed at the proxy (same user, database
 * and parameters). Close the proxy when done; the node is untouched.
 *
 * @example
 * ```ts
 * import { createRouter } from 'pg-replica-router';
 * import { proxyNode, startCluster } from 'pg-replica-router/testing';
 *
 * const cluster = await startCluster({ replicas: 1 });
 * const { proxy, connectionString } = await proxyNode(cluster.replicas[0]!);
 * const router = createRouter({ primary: { connectionString: cluster.primary.connectionString }, replicas: [{ name: 'r1', connectionString }] });
 * proxy.setMode('blackhole');   // r1 stops answering without closing anything
 * ```
 */
export async function proxyNode(
  node: ProxiedEndpoint,
  options: { mode?: FaultMode } = {},
): Promise<{ proxy: FaultProxy; connectionString: string }> {
  const original = node.connectionString ?? node.url;
  if (typeof original !== 'string') {
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, 'proxyNode: the node needs a connectionString (or url) to point at the proxy');
  }
  let url: URL;
  try {
    url = new URL(original);
  } catch {
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, 'proxyNode: the node connection string is not a URL');
  }
  const proxy = await startFaultProxy({ host: node.host, port: node.port }, options);
  url.hostname = proxy.host;
  url.port = String(proxy.port);
  return { proxy, connectionString: url.toString() };
}
