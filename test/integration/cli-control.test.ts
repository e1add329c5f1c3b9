import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterStatus } from '../../lib/cli/status-report.js';
import { cliResult, endSpawned, runCli, type ClusterInfo, type Spawned } from '../helpers/cli.js';
import { processTree } from '../helpers/processes.js';

// `cluster pause|resume|delay|status` against a cluster that `cluster up` runs in another process.

const states = mkdtempSync(join(tmpdir(), 'pgrr-cli-control-'));
const state = join(states, 'cluster.json');
let up: Spawned;
let info: ClusterInfo;

/** A control command against the running cluster (through --state; `cluster up` got it from the environment). */
const control = (...args: string[]) => cliResult(['cluster', ...args, '--state', state]);

async function status(): Promise<ClusterStatus> {
  const { code, stdout, stderr } = await control('status', '--json');
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout) as ClusterStatus;
}

async function rows(url: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ id: number }>('select id from notes order by id')).rows.map((r) => r.id);
  } finally {
    await client.end();
  }
}

const onPrimary = async (sql: string) => {
  const client = new pg.Client({ connectionString: info.primary });
  await client.connect();
  await client.query(sql);
  await client.end();
};

beforeAll(async () => {
  up = runCli(['cluster', 'up', '--replicas', '2', '--json'], { PGRR_CLUSTER_STATE: state });
  info = await up.json;
  await onPrimary('create table notes (id int primary key)');
  // both replicas have the table before the tests pause one
  for (const url of Object.values(info.replicas)) await waitRows(url, []);
}, 120_000);

afterAll(async () => {
  up.child.kill('SIGTERM');
  await up.ended;
  expect(existsSync(state)).toBe(false); // the state file goes with the cluster
  await endSpawned();
  rmSync(states, { recursive: true, force: true });
});

/** Polls until `url` holds exactly `ids` (bounded). */
async function waitRows(url: string, ids: number[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (JSON.stringify(await rows(url)) === JSON.stringify(ids)) return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) expect(await rows(url)).toEqual(ids);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('pg-replica-router cluster pause | resume', () => {
  it('pause r1: a write on the primary is not visible on r1 (it is on r2); resume r1: it is', async () => {
    const paused = await control('pause', 'r1');
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toMatch(/^r1: replay paused at [0-9A-F]+\/[0-9A-F]+$/m);

    await onPrimary('insert into notes values (1)');
    await waitRows(info.replicas.r2!, [1]); // replicated, and replayed where replay runs
    expect(await rows(info.replicas.r1!)).toEqual([]); // r1 serves its old snapshot

    const shown = await status();
    expect(shown.replicas.find((r) => r.name === 'r1')).toMatchObject({ paused: true });
    expect(shown.replicas.find((r) => r.name === 'r1')!.lagBytes).toBeGreaterThan(0);

    const resumed = await control('resume', 'r1');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toBe('r1: replay resumed\n');
    await waitRows(info.replicas.r1!, [1]);
  });
});

describe('pg-replica-router cluster status', () => {
  it('--json: the primary insert LSN, each replica its replay LSN, lag in bytes and time, paused, delay', async () => {
    await control('pause', 'r2');
    await onPrimary('insert into notes values (2)');
    await waitRows(info.replicas.r1!, [1, 2]);
    // The primary measures r2's lag time from its replies, sent every second (wal_receiver_status_interval).
    let shown = await status();
    const deadline = Date.now() + 10_000;
    while (!(shown.replicas[1]!.lagMs! > 0) && Date.now() < deadline) shown = await status();
    expect(shown.primary.insertLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(shown.primary.error).toBeNull();
    const [r1, r2] = shown.replicas;
    expect(r1).toMatchObject({ name: 'r1', url: info.replicas.r1, paused: false, applyDelayMs: 0, error: null });
    expect(r2).toMatchObject({ name: 'r2', url: info.replicas.r2, paused: true, applyDelayMs: 0, error: null });
    expect(r2!.lagBytes).toBeGreaterThan(0);
    expect(r2!.lagMs).toBeGreaterThan(0);
    expect(r2!.replayLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);

    const text = await control('status');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^primary  insert [0-9A-F]+\/[0-9A-F]+$/m);
    expect(text.stdout).toMatch(/^r2 +replay [0-9A-F]+\/[0-9A-F]+ +lag \d+(\.\d)? k?B, [\d.]+ m?s +replay paused +apply delay 0 ms$/m);

    await control('resume', 'r2');
    await waitRows(info.replicas.r2!, [1, 2]);
    // once caught up, no lag in bytes or time
    let caughtUp = await status();
    const later = Date.now() + 10_000;
    while (caughtUp.replicas.some((r) => r.lagBytes !== 0) && Date.now() < later) caughtUp = await status();
    expect(caughtUp.replicas.map((r) => [r.lagBytes, r.lagMs, r.paused])).toEqual([
      [0, 0, false],
      [0, 0, false],
    ]);
  });
});

describe('pg-replica-router cluster delay', () => {
  it('delay r1 500 sets recovery_min_apply_delay, reloaded, and status shows it', async () => {
    const set = await control('delay', 'r1', '500');
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe('r1: recovery_min_apply_delay is 500 ms\n');
    const client = new pg.Client({ connectionString: info.replicas.r1 });
    await client.connect();
    expect((await client.query('show recovery_min_apply_delay')).rows[0]).toEqual({ recovery_min_apply_delay: '500ms' });
    await client.end();
    expect((await status()).replicas.map((r) => [r.name, r.applyDelayMs])).toEqual([
      ['r1', 500],
      ['r2', 0],
    ]);
    expect((await control('status')).stdout).toMatch(/^r1 .* apply delay 500 ms$/m);
    expect((await control('delay', 'r1', '0')).code).toBe(0);
  });
});

describe('mistakes get stable codes', () => {
  it('an unknown replica: ERR_PGRR_UNKNOWN_REPLICA, with the replicas there are', async () => {
    const { code, stderr } = await control('pause', 'r3');
    expect(code).toBe(1);
    expect(stderr).toMatch(/^ERR_PGRR_UNKNOWN_REPLICA: the cluster has no replica "r3" \(did you mean "r1"\?\); its replicas: r1, r2$/m);
  });

  it('no cluster at that state file: ERR_PGRR_NO_CLUSTER', async () => {
    for (const args of [['status'], ['pause', 'r1'], ['delay', 'r1', '10']]) {
      const { code, stderr } = await cliResult(['cluster', ...args, '--state', join(states, 'nothing.json')]);
      expect(code).toBe(1);
      expect(stderr).toMatch(/^ERR_PGRR_NO_CLUSTER: no cluster is running: .*nothing\.json does not exist/m);
    }
  });

  it('a second cluster up on the same state file: ERR_PGRR_CLUSTER_RUNNING, before starting anything', async () => {
    const began = Date.now();
    const { code, stderr } = await cliResult(['cluster', 'up', '--json'], { PGRR_CLUSTER_STATE: state });
    expect(code).toBe(1);
    expect(stderr).toMatch(new RegExp(`^ERR_PGRR_CLUSTER_RUNNING: a cluster is already running \\(pid ${info.pid}, state file `, 'm'));
    expect(Date.now() - began).toBeLessThan(10_000);
    expect((await status()).replicas).toHaveLength(2); // the running one is untouched
  });

  it('bad delays: ERR_PGRR_INVALID_OPTION; missing arguments: the usage, exit 2', async () => {
    const words = await control('delay', 'r1', 'soon');
    expect(words.code).toBe(1);
    expect(words.stderr).toMatch(/ERR_PGRR_INVALID_OPTION: cluster delay <ms> takes a whole number, got "soon"/);
    const big = await control('delay', 'r1', '3600001');
    expect(big.code).toBe(1);
    expect(big.stderr).toMatch(/ERR_PGRR_INVALID_OPTION: the apply delay must be a whole number of ms from 0 to 3600000, got 3600001/);
    const missing = await control('pause');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(
      /cluster pause takes a replica name\n\nUsage: pg-replica-router cluster pause <replica> \[--state FILE\]/,
    );
    const unknownOption = await control('status', '--jsn');
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toMatch(/Unknown option '--jsn'/);
  });
});

describe('a replica that cannot be read', () => {
  it('status still reports the others, with the error for it, and exits 1', async () => {
    for (const pid of processTree([info.pids!.r1!])) process.kill(pid, 'SIGKILL');
    const { code, stdout } = await control('status', '--json');
    expect(code).toBe(1);
    const shown = JSON.parse(stdout) as ClusterStatus;
    expect(shown.replicas[0]).toMatchObject({ name: 'r1', replayLsn: null, lagBytes: null, paused: null });
    expect(shown.replicas[0]!.error).toMatch(/ECONNREFUSED/);
    expect(shown.replicas[1]).toMatchObject({ name: 'r2', error: null, paused: false });
    expect(shown.primary.error).toBeNull();
    expect((await control('status')).stdout).toMatch(/^r1 +unreachable: .*ECONNREFUSED/m);
  });
});
