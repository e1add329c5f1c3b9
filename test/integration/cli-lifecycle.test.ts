import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  clusterPorts,
  cliResult,
  endSpawned,
  eventually,
  gone,
  listening,
  repoRoot,
  runCli,
  spawnCollected,
  type ClusterInfo,
  type Spawned,
} from '../helpers/cli.js';
import { processTree } from '../helpers/processes.js';

// The cluster dies with whatever started it: real npm and npx processes, real signals, and every
// PostgreSQL process of the cluster (postmasters and their children) checked gone, its ports closed.

const states = mkdtempSync(join(tmpdir(), 'pgrr-cli-lifecycle-'));
afterAll(() => rmSync(states, { recursive: true, force: true }));

/** Servers of clusters a test started: removed by force if a test failed before they went. */
const started: ClusterInfo[] = [];
afterEach(async () => {
  await endSpawned();
  for (const info of started.splice(0)) {
    for (const pid of [info.pid, ...processTree(Object.values(info.pids ?? {}))]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    if (info.dir) rmSync(info.dir, { recursive: true, force: true });
  }
});

let count = 0;
const args = ['--replicas', '1', '--redis', '--json'];

/** `npm run cluster`: npm runs the package script, which execs the CLI (npm → node). */
function npmRun(state: string): Spawned {
  return spawnCollected('npm', ['run', 'cluster', '--', ...args], { cwd: repoRoot, env: { ...process.env, PGRR_CLUSTER_STATE: state } });
}

/** `npx -c '<command>'`: npm exec runs it in `sh -c`, as `npx pg-replica-router cluster up` runs the bin (npm → sh → node). */
function npxExec(state: string, options: { detached?: boolean } = {}): Spawned {
  const command = ['node', '--import', 'tsx', 'lib/cli.ts', 'cluster', 'up', ...args].join(' ');
  return spawnCollected('npx', ['-c', command], { cwd: repoRoot, env: { ...process.env, PGRR_CLUSTER_STATE: state }, ...options });
}

async function up(start: (state: string) => Spawned) {
  const state = join(states, `cluster-${++count}.json`);
  const run = start(state);
  const info = await run.json;
  started.push(info);
  // Every PostgreSQL process (each postmaster and its children) and Redis, seen running.
  const processes = processTree(Object.values(info.pids ?? {}));
  expect(Object.keys(info.pids ?? {}).sort()).toEqual(['primary', 'r1', 'redis']);
  expect(processes.length).toBeGreaterThan(5);
  for (const port of clusterPorts(info)) expect(await listening(port)).toBe(true);
  expect(existsSync(state)).toBe(true);
  return { run, info, processes, state };
}

async function expectAllGone(info: ClusterInfo, processes: number[], state: string) {
  expect(await gone(processes, 20_000)).toEqual([]);
  for (const port of clusterPorts(info)) expect(await listening(port)).toBe(false);
  expect(await eventually(() => !existsSync(info.dir!) && !existsSync(state))).toBe(true);
}

describe.each([
  ['npm run cluster', npmRun, ['SIGTERM', 'SIGINT', 'SIGHUP']],
  ['npx (npm exec → sh -c → node)', npxExec, ['SIGTERM', 'SIGHUP']],
] as const)('%s', (_, start, signals) => {
  it.each(signals)('%s to the npm process removes the whole cluster', async (signal) => {
    const { run, info, processes, state } = await up(start);
    run.child.kill(signal);
    await run.ended;
    await expectAllGone(info, processes, state);
  });
});

describe('Ctrl-C in a terminal: SIGINT to the whole process group', () => {
  it('reaches the CLI under npx', async () => {
    // In a process group of its own, as a terminal's foreground job.
    const { run, info, processes, state } = await up((file) => npxExec(file, { detached: true }));
    process.kill(-run.child.pid!, 'SIGINT');
    await run.ended;
    await expectAllGone(info, processes, state);
  });
});

describe('a signal while the cluster starts', () => {
  it('ends the process by that signal, and its state file goes', async () => {
    const state = join(states, 'starting.json');
    const run = runCli(['cluster', 'up', '--json'], { PGRR_CLUSTER_STATE: state });
    expect(await eventually(() => existsSync(state), 20_000)).toBe(true); // claimed: start-up has begun
    run.child.kill('SIGTERM');
    expect((await run.ended).signal).toBe('SIGTERM');
    expect(existsSync(state)).toBe(false);
    expect(run.output().stdout).toBe(''); // it never got as far as printing the cluster
  });
});

describe('a process that cannot clean up', () => {
  it('SIGKILL to the CLI itself: the watchdog removes the servers', async () => {
    const { run, info, processes, state } = await up(npmRun);
    process.kill(info.pid, 'SIGKILL');
    await run.ended;
    expect(await gone(processes, 20_000)).toEqual([]);
    for (const port of clusterPorts(info)) expect(await listening(port)).toBe(false);
    expect(await eventually(() => !existsSync(info.dir!))).toBe(true);
    // Its state file stays, naming a process that has gone: commands say so.
    const status = await cliResult(['cluster', 'status', '--state', state]);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(/ERR_PGRR_NO_CLUSTER: no cluster is running: the process that started the cluster .* has gone/);
  });
});
