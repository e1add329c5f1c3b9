import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

// docs/testing.md says ports are picked from 10000 up to the ephemeral range (32768 by default on
// Linux); its examples must show ports a cluster can have.
it('every example port in docs/testing.md lies where the harness picks ports', () => {
  const doc = readFileSync(new URL('../../docs/testing.md', import.meta.url), 'utf8');
  const ports = [...doc.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
  expect(ports.length).toBeGreaterThan(5);
  expect(ports.filter((port) => port < 10_000 || port >= 32_768)).toEqual([]);
});
