import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerReachable } from '../../lib/testing/docker.js';

describe('Docker engine detection (for provider auto)', () => {
  it('is false when there is no socket (a docker client alone does not count)', async () => {
    expect(await dockerReachable({ DOCKER_HOST: 'unix:///nonexistent/docker.sock' })).toBe(false);
    expect(await dockerReachable({ DOCKER_HOST: 'tcp://127.0.0.1:1' })).toBe(false);
  });

  it('is true only when something answers GET /_ping with 200', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgrr-docker-'));
    const socket = join(dir, 'docker.sock');
    let status = 200;
    const server = createServer((req, res) => {
      res.statusCode = req.url === '/_ping' ? status : 404;
      res.end('OK');
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      expect(await dockerReachable({ DOCKER_HOST: `unix://${socket}` })).toBe(true);
      status = 500;
      expect(await dockerReachable({ DOCKER_HOST: `unix://${socket}` })).toBe(false);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
