import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import pg from 'pg';

const cli = fileURLToPath(new URL('../../lib/cli.ts', import.meta.url));
// A state file of this file's own, so that clusters other test files start do not collide with these.
const states = mkdtempSync(join(tmpdir(), 'pgrr-cli-test-'));
const state = join(states, 'cluster.json');
afterAll(() => rmSync(states, { recursive: true, force: true }));

function runCli(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PGRR_CLUSTER_STATE: state },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ended = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => {
      if (stdout.includes('\n')) resolve(stdout.split('\n')[0]!);
    });
    void ended.then(() => reject(new Error(`cli ended: ${stderr}`)));
  });
  firstLine.catch(() => {}); // only some tests wait for it
  return { child, ended, firstLine, output: () => ({ stdout, stderr }) };
}

describe('npx pg-replica-router cluster up', () => {
  it('--json prints URLs that work, and Ctrl-C removes everything', async () => {
    const run = runCli(['cluster', 'up', '--replicas', '1', '--apply-delay', '25', '--redis', '--json']);
    const info = JSON.parse(await run.firstLine) as {
      primary: string;
      replicas: Record<string, string>;
      redis: string;
      dir: string;
      startupMs: number;
      provider: string;
    };
    expect(info.provider).toBe('native');
    expect(Object.keys(info.replicas)).toEqual(['r1']);
    expect(info.startupMs).toBeGreaterThan(0);

    const replica = new pg.Client({ connectionString: info.replicas.r1 });
    await replica.connect();
    const { rows } = await replica.query("select pg_is_in_recovery() as standby, current_setting('recovery_min_apply_delay') as delay");
    await replica.end();
    expect(rows[0]).toEqual({ standby: true, delay: '25ms' });

    const redis = new Redis(info.redis, { lazyConnect: true });
    await redis.connect();
    expect(await redis.ping()).toBe('PONG');
    redis.disconnect();

    run.child.kill('SIGINT');
    expect(await run.ended).toBe(0);
    expect(existsSync(info.dir)).toBe(false);
  });

  it('prints the start-up time and URLs as text', async () => {
    const run = runCli(['cluster', 'up', '--replicas', '0']);
    expect(await run.firstLine).toMatch(/^Cluster up in \d+\.\d s \(native\)\.$/);
    await new Promise((r) => setTimeout(r, 100));
    expect(run.output().stdout).toMatch(/primary\s+postgresql:\/\/postgres@127\.0\.0\.1:\d+\/postgres/);
    run.child.kill('SIGTERM');
    expect(await run.ended).toBe(0);
    expect(run.output().stdout).toMatch(/Cluster stopped and removed\./);
  });

  it('rejects bad arguments with a usage message', async () => {
    const bad = runCli(['cluster', 'up', '--replicas', 'two']);
    expect(await bad.ended).toBe(1);
    expect(bad.output().stderr).toMatch(/ERR_PGRR_INVALID_OPTION: --replicas takes a whole number/);
    const unknown = runCli(['cluster', 'down']);
    expect(await unknown.ended).toBe(2);
    expect(unknown.output().stderr).toMatch(/^Usage: pg-replica-router <command>/);
    expect(unknown.output().stderr).toMatch(/^pg-replica-router cluster up \[--replicas N\]/m);
  });
});
