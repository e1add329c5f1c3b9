import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster } from 'pg-replica-router/testing';
import { endSpawned, eventually, gone, processesMentioning, spawnCollected } from '../helpers/cli.js';

const fixture = fileURLToPath(new URL('../fixtures/hold-cluster.ts', import.meta.url));

afterEach(endSpawned);

describe('the cluster watchdog', () => {
  it('removes the servers and the directory of a process killed with SIGKILL', async () => {
    const run = spawnCollected(process.execPath, ['--import', 'tsx', fixture, 'wait']);
    // hold-cluster prints { dir, servers, pids } (its own shape, not cluster up's)
    const { dir, pids } = (await run.json) as unknown as { dir: string; pids: number[] };
    expect(existsSync(dir)).toBe(true);
    run.child.kill('SIGKILL'); // no exit hook runs
    expect((await run.ended).signal).toBe('SIGKILL');
    expect(await gone(pids)).toEqual([]);
    expect(await eventually(() => !existsSync(dir))).toBe(true);
    // and the watchdog itself has gone
    expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true);
  });

  it('ends with cluster.stop(), leaving no process behind', async () => {
    const cluster = await startCluster({ replicas: 0, provider: 'native' });
    const dir = cluster.dir!;
    expect(processesMentioning(dir).length).toBeGreaterThan(0); // the server and the watchdog
    await cluster.stop();
    expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true);
  });
});
