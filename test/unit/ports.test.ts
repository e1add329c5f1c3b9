import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ephemeralLow, freePort } from '../../lib/testing/processes.js';

describe('freePort', () => {
  it('picks free loopback ports below the ephemeral range, where no outgoing connection takes them', async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralLow());
    }
    // and they really are free: a server can bind one
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(ports[0], '127.0.0.1', () => resolve()));
    await new Promise((resolve) => server.close(resolve));
  });
});
