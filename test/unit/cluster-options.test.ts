import { describe, expect, it } from 'vitest';
import { startCluster } from 'pg-replica-router/testing';
import { resolveClusterOptions } from '../../lib/testing/options.js';
import { confArgs, confLines, confValue } from '../../lib/testing/postgres-config.js';

const invalid = (message: RegExp) => expect.objectContaining({ code: 'ERR_PGRR_INVALID_OPTION', message: expect.stringMatching(message) });

describe('startCluster options', () => {
  it('fills in defaults', () => {
    expect(resolveClusterOptions()).toMatchObject({
      replicas: 2,
      redis: false,
      provider: 'auto',
      applyDelayMs: 0,
      database: 'postgres',
      startTimeoutMs: 60_000,
      settings: {},
    });
  });

  it.each([
    [{ replicas: -1 }, /replicas must be an integer from 0 to 16/],
    [{ replicas: 1.5 }, /replicas/],
    [{ replicas: 17 }, /replicas/],
    [{ replicas: '2' }, /replicas/],
    [{ applyDelayMs: -5 }, /applyDelayMs/],
    [{ provider: 'docker' }, /provider must be 'native', 'containers' or 'auto'/],
    [{ redis: 'yes' }, /redis must be a boolean/],
    [{ database: 'My-DB' }, /database must be a lower-case identifier/],
    [{ settings: { 'bad name': 1 } }, /not a setting name/],
    [{ settings: { work_mem: null } }, /settings.work_mem must be/],
    [{ settings: [] }, /settings must be an object/],
    [{ startTimeoutMs: 10 }, /startTimeoutMs must be at least 1000/],
    [{ pgBin: '' }, /pgBin must be a non-empty string/],
  ])('rejects %j', (options, message) => {
    expect(() => resolveClusterOptions(options as never)).toThrow(invalid(message));
  });

  it('suggests the right name for a misspelt option', () => {
    expect(() => resolveClusterOptions({ replica: 1 } as never)).toThrow(invalid(/unknown option "replica" \(did you mean "replicas"\?\)/));
    expect(() => resolveClusterOptions({ applyDelay: 1 } as never)).toThrow(invalid(/did you mean "applyDelayMs"/));
    expect(() => resolveClusterOptions({ zzzzzz: 1 } as never)).toThrow(invalid(/unknown option "zzzzzz"$/));
  });

  it('upstreams: cascading replicas name existing replicas, never themselves, with no cycle, on the native provider', () => {
    expect(resolveClusterOptions({ replicas: 3, upstreams: { r2: 'r1', r3: 'r2' } }).upstreams).toEqual({ r2: 'r1', r3: 'r2' });
    expect(resolveClusterOptions({ replicas: 1 }).upstreams).toEqual({});
    expect(() => resolveClusterOptions({ replicas: 2, upstreams: { r3: 'r1' } })).toThrow(invalid(/"r3" is not one of the replicas/));
    expect(() => resolveClusterOptions({ replicas: 2, upstreams: { r2: 'primary' } })).toThrow(
      invalid(/upstreams.r2 must name another replica/),
    );
    expect(() => resolveClusterOptions({ replicas: 2, upstreams: { r2: 'r2' } })).toThrow(invalid(/cycle/));
    expect(() => resolveClusterOptions({ replicas: 3, upstreams: { r1: 'r2', r2: 'r3', r3: 'r1' } })).toThrow(invalid(/cycle/));
    expect(() => resolveClusterOptions({ replicas: 2, upstreams: ['r1'] as never })).toThrow(invalid(/upstreams must be an object/));
    expect(() => resolveClusterOptions({ replicas: 2, provider: 'containers', upstreams: { r2: 'r1' } })).toThrow(
      invalid(/native provider/),
    );
  });

  it('validates before starting anything', async () => {
    await expect(startCluster({ replicas: -1 })).rejects.toThrow(invalid(/replicas/));
  });
});

describe('postgresql.conf rendering', () => {
  it('quotes strings and spells booleans as PostgreSQL does', () => {
    expect(confValue("it's")).toBe("'it''s'");
    expect(confValue('a\\b')).toBe("'a\\\\b'");
    expect(confValue(true)).toBe('on');
    expect(confValue(12)).toBe('12');
    expect(confLines({ work_mem: '8MB', fsync: false })).toBe("work_mem = '8MB'\nfsync = off\n");
    expect(confArgs({ work_mem: '8MB', fsync: false })).toEqual(['-c', 'work_mem=8MB', '-c', 'fsync=off']);
  });
});
