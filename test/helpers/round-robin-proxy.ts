import net from 'node:net';

/** A TCP load balancer on loopback: each new connection goes to the next of `targets` in turn. */
export interface RoundRobinProxy {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts a {@link RoundRobinProxy}: what users put in front of several replicas, and must not. */
export async function startRoundRobinProxy(targets: readonly { host: string; port: number }[]): Promise<RoundRobinProxy> {
  let next = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const target = targets[next++ % targets.length]!;
    const upstream = net.connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
