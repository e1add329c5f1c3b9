import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('without @opentelemetry/api installed', () => {
  it('the library still routes, tracks positions and runs helpers', () => {
    const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
    const run = spawnSync(
      process.execPath,
      ['--require', here('../fixtures/no-otel.cjs'), '--import', 'tsx', here('../fixtures/route-without-otel.ts')],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!);
    expect(result).toMatchObject({ otelLoadable: false, n: 1, viaBaggage: 'ran' });
  });
});
