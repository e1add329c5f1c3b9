import { existsSync } from 'node:fs';
import { request } from 'node:http';

/**
 * True when a Docker engine answers `GET /_ping` within a second, on `DOCKER_HOST`
 * (unix:// or tcp://) or the default socket. A `docker` client alone is not enough.
 */
export function dockerReachable(env: Record<string, string | undefined> = process.env): Promise<boolean> {
  const dockerHost = env.DOCKER_HOST;
  let target: { socketPath: string } | { host: string; port: number };
  if (dockerHost?.startsWith('tcp://')) {
    const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
    target = { host: url.hostname, port: Number(url.port || 2375) };
  } else {
    const socketPath = dockerHost?.startsWith('unix://') ? dockerHost.slice('unix://'.length) : '/var/run/docker.sock';
    if (!existsSync(socketPath)) return Promise.resolve(false);
    target = { socketPath };
  }
  return new Promise((resolve) => {
    const req = request({ ...target, path: '/_ping', method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
