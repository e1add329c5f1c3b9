import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { stillAlive } from '../helpers/processes.js';

const fixture = fileURLToPath(new URL('../fixtures/hold-cluster.ts', import.meta.url));

/** Runs the fixture; resolves with what it printed and a way to signal it and await its end. */
const children = new Set<ReturnType<typeof spawn>>();

// Whatever a test asserted, never leave a fixture (and its cluster) running: SIGTERM makes it clean up.
afterEach(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
  children.clear();
});

function holdCluster(mode: 'wait' | 'throw', as: { uid?: number; gid?: number } = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, mode], { stdio: ['ignore', 'pipe', 'pipe'], ...as });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const info = new Promise<{ dir: string; servers: number[]; pids: number[] }>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(JSON.parse(line));
    });
    void ended.then(() => reject(new Error(`fixture ended before printing: ${stderr}`)));
  });
  info.catch(() => {});
  return { child, info, ended, stderr: () => stderr };
}

async function gone(pids: number[]): Promise<number[]> {
  // The servers get an immediate-shutdown request on the way out; allow them to finish it.
  for (let i = 0; i < 100 && stillAlive(pids).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  return stillAlive(pids);
}

describe('clean-up when the process ends without cluster.stop()', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`on ${signal}`, async () => {
      const run = holdCluster('wait');
      const { dir, servers, pids } = await run.info;
      expect(existsSync(dir)).toBe(true);
      expect(stillAlive(servers)).toEqual(servers); // (short-lived backends may come and go)
      run.child.kill(signal);
      const { signal: endedBy } = await run.ended;
      expect(endedBy).toBe(signal); // the default action still ends the process
      expect(existsSync(dir)).toBe(false);
      expect(await gone(pids)).toEqual([]);
    });
  }

  it('when a test throws and the process exits', async () => {
    const run = holdCluster('throw');
    const { dir, pids } = await run.info;
    const { code } = await run.ended;
    expect(code).toBe(1);
    expect(run.stderr()).toMatch(/never called cluster.stop/);
    expect(existsSync(dir)).toBe(false);
    expect(await gone(pids)).toEqual([]);
  });
});

describe('as a normal (non-root) user', () => {
  // Under root, run the fixture as the unprivileged postgres user; otherwise we already are one.
  const passwd = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => l.split(':'));
  const user = passwd.find((f) => f[0] === 'postgres') ?? passwd.find((f) => f[0] === 'nobody');
  const as = process.getuid?.() === 0 && user ? { uid: Number(user[2]), gid: Number(user[3]) } : {};
  // That user must be able to read this checkout (not so under a 0700 home directory).
  const readable = spawnSync('test', ['-r', fixture], as).status === 0;

  it.runIf(readable)('runs PostgreSQL directly as that user (when it can read this checkout)', async () => {
    const run = holdCluster('wait', as);
    const { dir, pids } = await run.info;
    const owner = readFileSync(`/proc/${pids[0]}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1];
    expect(Number(owner)).toBe(as.uid ?? process.getuid?.());
    run.child.kill('SIGTERM');
    await run.ended;
    expect(existsSync(dir)).toBe(false);
    expect(await gone(pids)).toEqual([]);
  });
});
