import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { claimState, runningCluster, stateFile, type ClusterInfo } from '../../lib/cli/cluster-state.js';

// The state file through which the CLI's cluster commands find the cluster `cluster up` runs.

const dir = mkdtempSync(join(tmpdir(), 'pgrr-cli-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `state-${++n}.json`);

const info = (state: string): ClusterInfo => ({
  provider: 'native',
  startupMs: 1,
  primary: 'postgresql://postgres@127.0.0.1:1/postgres',
  replicas: { r1: 'postgresql://postgres@127.0.0.1:2/postgres' },
  redis: null,
  dir: null,
  pid: process.pid,
  pids: null,
  state,
});

/** A pid that was a process a moment ago and is not any more. */
const deadPid = () => spawnSync('true').pid!;

describe('stateFile', () => {
  it('is --state, else $PGRR_CLUSTER_STATE, else one per user in the temporary directory', () => {
    expect(stateFile('/x/given.json', { PGRR_CLUSTER_STATE: '/x/env.json' })).toBe('/x/given.json');
    expect(stateFile(undefined, { PGRR_CLUSTER_STATE: '/x/env.json' })).toBe('/x/env.json');
    expect(stateFile(undefined, {})).toBe(join(tmpdir(), `pg-replica-router-${process.getuid!()}`, 'cluster.json'));
  });
});

describe('claimState and runningCluster', () => {
  it('a claimed file says "still starting", then names the cluster, and goes on release', () => {
    const path = fresh();
    const claimed = claimState(path);
    expect(() => runningCluster(path)).toThrow(/^no cluster is running: the cluster of .* is still starting/);
    claimed.publish(info(path));
    expect(runningCluster(path)).toEqual(info(path));
    claimed.release();
    expect(existsSync(path)).toBe(false);
    expect(() => runningCluster(path)).toThrow(expect.objectContaining({ code: 'ERR_PGRR_NO_CLUSTER' }));
  });

  it('refuses a file held by a running process: ERR_PGRR_CLUSTER_RUNNING', () => {
    const path = fresh();
    const claimed = claimState(path);
    expect(() => claimState(path)).toThrow(expect.objectContaining({ code: 'ERR_PGRR_CLUSTER_RUNNING' }));
    claimed.release();
  });

  it('replaces a file whose process has gone (a SIGKILLed cluster up), which commands report as gone', () => {
    const path = fresh();
    const pid = deadPid();
    writeFileSync(path, JSON.stringify({ owner: { pid }, cluster: info(path) }));
    expect(() => runningCluster(path)).toThrow(
      expect.objectContaining({ code: 'ERR_PGRR_NO_CLUSTER', message: expect.stringMatching(`\\(pid ${pid}\\) has gone`) }),
    );
    const claimed = claimState(path);
    expect(JSON.parse(readFileSync(path, 'utf8')).owner.pid).toBe(process.pid);
    claimed.release();
  });

  it('a reused pid is not the owner: the start time must match too (Linux)', () => {
    const path = fresh();
    writeFileSync(path, JSON.stringify({ owner: { pid: process.pid, start: '1' }, cluster: info(path) }));
    expect(() => runningCluster(path)).toThrow(/has gone/);
  });

  it('never removes a file that is not a state file', () => {
    const path = fresh();
    writeFileSync(path, '{"name": "my-app"}');
    expect(() => claimState(path)).toThrow(expect.objectContaining({ code: 'ERR_PGRR_INVALID_OPTION' }));
    expect(() => runningCluster(path)).toThrow(/is not a cluster state file/);
    expect(readFileSync(path, 'utf8')).toBe('{"name": "my-app"}');
  });

  it('release leaves a file another process has claimed since', () => {
    const path = fresh();
    const claimed = claimState(path);
    writeFileSync(path, JSON.stringify({ owner: { pid: 1 }, cluster: null }));
    claimed.release();
    expect(existsSync(path)).toBe(true);
  });
});
