import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from 'pg-replica-router/testing';
import { naiveQuery } from '../helpers/cluster.js';

// The README's example, run literally as a user would: its code block as a file of its own,
// importing the built package by name, against the URLs `cluster up` prints (the superuser's:
// the example creates its table), with every replica paused so its read-your-writes shows.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let cluster: Cluster;
let dir: string;

/** The first ```ts block after the README's "## Example" heading. */
function readmeExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Example\n'));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (!match) throw new Error('README.md has no ```ts block under ## Example');
  return match[1]!;
}

beforeAll(async () => {
  cluster = await startCluster({ replicas: 2, redis: true });
  dir = mkdtempSync(join(ROOT, '.tmp-readme-')); // inside the project: `pg-replica-router` resolves to the package itself (dist/)
}, 120_000);

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await cluster?.stop();
});

describe("the README's example", () => {
  it('runs as written and reads its own write with every replica paused; a plain replica read misses it', async () => {
    const file = join(dir, 'example.ts');
    writeFileSync(file, readmeExample());
    for (const replica of cluster.replicas) await replica.pauseReplay();
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], {
      cwd: dir,
      timeout: 60_000,
      env: {
        ...process.env,
        PRIMARY_URL: cluster.primary.connectionString,
        REPLICA1_URL: cluster.replicas[0]!.connectionString,
        REPLICA2_URL: cluster.replicas[1]!.connectionString,
        REDIS_URL: cluster.redis!.url,
      },
    });
    expect(stdout).toMatch(/body: 'hello'/);
    expect(await naiveQuery(cluster.replicas[0]!.connectionString, "select to_regclass('notes') as t")).toEqual([{ t: null }]);
    for (const replica of cluster.replicas) await replica.resumeReplay();
  });
});
