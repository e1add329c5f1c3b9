import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { startTestCluster, urlAs } from '../helpers/cluster.js';

// `pg-replica-router doctor` as a deploy gate: a real process, its output and its exit code.

const CLI = fileURLToPath(new URL('../../lib/cli.ts', import.meta.url));
let cluster: Cluster;
let dir: string;

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1, redis: true });
  dir = mkdtempSync(join(tmpdir(), 'pgrr-doctor-'));
}, 120_000);

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await cluster?.stop();
});

function doctor(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI, 'doctor', ...args],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('pg-replica-router doctor', () => {
  it('exits 0 on a sound setup given by URLs, and prints the report as JSON', async () => {
    const { code, stdout } = await doctor(
      [
        '--primary',
        urlAs(cluster.primary),
        '--replica',
        `r1=${urlAs(cluster.replicas[0]!)}`,
        '--redis',
        cluster.redis!.url,
        '--token-secret-env',
        'SECRET',
        '--json',
      ],
      { SECRET: 'Zq3v9LrT2mXk8NwB5cYh7JdF4gPs6AeU' },
    );
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as DoctorReport;
    expect(report.ok).toBe(true);
    expect(report.routing.map((v) => [v.node, v.serving])).toEqual([
      ['primary', true],
      ['r1', true],
    ]);
    expect(report.findings.find((f) => f.check === 'store')).toMatchObject({
      severity: 'ok',
      message: expect.stringMatching(/redis store reachable/),
    });
  });

  it('exits 1 on a problem (a replica nobody listens for), from a config module, with a human report', async () => {
    const config = join(dir, 'router.config.mjs');
    writeFileSync(
      config,
      `export default { primary: { connectionString: ${JSON.stringify(urlAs(cluster.primary))} },\n` +
        `  replicas: [{ name: 'r1', connectionString: ${JSON.stringify(urlAs(cluster.replicas[0]!))} }, { name: 'gone', connectionString: 'postgresql://app:app@127.0.0.1:1/postgres' }] };\n`,
    );
    const { code, stdout } = await doctor(['--config', config]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/PROBLEM \[gone\] reachable: cannot connect/);
    expect(stdout).toMatch(/out {5}gone: replica gone is unreachable/);
    expect(stdout).toMatch(/serving r1: replica r1 is up and in rotation/);
  });

  it('a usage error is exit 2 with the usage, not a stack trace', async () => {
    const { code, stderr } = await doctor(['--replica', 'x']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/give --config FILE or --primary URL/);
    expect(stderr).toMatch(/Usage: pg-replica-router doctor/);
    expect(stderr).not.toMatch(/at .*\.ts:\d+/);
  });
});
