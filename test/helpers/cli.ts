import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { alive } from '../../lib/testing/processes.js';
import { processTree } from './processes.js';

/** The repository root (where `npm run cluster` runs) and the CLI's source. */
export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const cliSource = fileURLToPath(new URL('../../lib/cli.ts', import.meta.url));

/** What `cluster up --json` prints. */
export type { ClusterInfo } from '../../lib/cli/cluster-state.js';
import type { ClusterInfo } from '../../lib/cli/cluster-state.js';

/** A spawned process with its output collected, its first JSON line, and its end. */
export interface Spawned {
  child: ChildProcess;
  /** The first stdout line that starts with `{`, parsed (npm prints a banner before it). */
  json: Promise<ClusterInfo>;
  ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): { stdout: string; stderr: string };
}

const spawned = new Set<ChildProcess>();

export function spawnCollected(command: string, args: string[], options: SpawnOptions = {}): Spawned {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  spawned.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const json = new Promise<ClusterInfo>((resolve, reject) => {
    child.stdout!.on('data', () => {
      const line = stdout.split('\n').find((l, i, all) => l.startsWith('{') && i < all.length - 1);
      if (line) resolve(JSON.parse(line) as ClusterInfo);
    });
    void ended.then(() => reject(new Error(`ended before printing JSON:\n${stdout}\n${stderr}`)));
  });
  json.catch(() => {}); // only some callers wait for it
  return { child, json, ended, output: () => ({ stdout, stderr }) };
}

/** Runs the CLI from its source (`node --import tsx lib/cli.ts …`). */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  return spawnCollected(process.execPath, ['--import', 'tsx', cliSource, ...args], { cwd: repoRoot, env: { ...process.env, ...env } });
}

/** Runs the CLI to its end; resolves with its exit code and output. */
export async function cliResult(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = runCli(args, env);
  const { code } = await run.ended;
  return { code, ...run.output() };
}

/**
 * Ends whatever a test spawned and left running (SIGTERM, then SIGKILL), and the processes of a
 * cluster it learned of, so that one failing test does not leave servers behind.
 */
export async function endSpawned(): Promise<void> {
  for (const child of spawned) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await new Promise((resolve) => child.once('exit', resolve));
      clearTimeout(timer);
    }
  }
  spawned.clear();
}

/** Every process of a cluster: each server and its children. */
export function clusterProcesses(info: ClusterInfo): number[] {
  return processTree(Object.values(info.pids ?? {}));
}

/** Polls until none of `pids` is alive or `timeoutMs` has passed; resolves with those still alive. */
export async function gone(pids: number[], timeoutMs = 15_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(alive);
}

/** Polls until `check` holds or `timeoutMs` has passed; resolves with whether it holds. */
export async function eventually(check: () => boolean, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return check();
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The ports of a cluster's URLs. */
export function clusterPorts(info: ClusterInfo): number[] {
  return [info.primary, ...Object.values(info.replicas), ...(info.redis ? [info.redis] : [])].map((url) => Number(new URL(url).port));
}

/** PIDs of processes whose arguments mention `text` (Linux), e.g. a cluster's directory. */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text) && alive(Number(entry))) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}
