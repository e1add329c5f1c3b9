import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { suggest } from '../suggest.js';

/** Which machinery starts the cluster. */
export type ClusterProvider = 'native' | 'containers' | 'auto';

/** A postgresql.conf value. */
export type SettingValue = string | number | boolean;

/**
 * Options for {@link startCluster}. Everything is optional.
 */
export interface ClusterOptions {
  /** Number of physical streaming replicas (hot standbys). Default 2; 0 to 16. */
  replicas?: number;
  /** Also start a Redis server. Default `false`. */
  redis?: boolean;
  /**
   * `native` runs the PostgreSQL binaries found on this machine, `containers` uses
   * testcontainers and a Docker engine, `auto` (default) uses native binaries when it finds
   * them and containers only when a Docker engine is reachable.
   */
  provider?: ClusterProvider;
  /**
   * Cascading replicas: which replica another streams from instead of the primary, e.g.
   * `{ r2: 'r1' }` (r2 receives the WAL r1 has received). Chains are allowed, cycles are not.
   * Native provider only. Default: every replica streams from the primary.
   */
  upstreams?: Record<string, string>;
  /** Initial `recovery_min_apply_delay` of every replica, in ms. Default 0. */
  applyDelayMs?: number;
  /** Extra postgresql.conf settings for every node, e.g. `{ max_connections: 200 }`. */
  settings?: Record<string, SettingValue>;
  /** Directory holding `initdb` and `postgres`; overrides `PG_BIN` and the search. */
  pgBin?: string;
  /** Path of `redis-server`; overrides `REDIS_SERVER` and the search. */
  redisServer?: string;
  /**
   * The unprivileged OS user that runs PostgreSQL when this process is root (PostgreSQL
   * refuses to run as root). Default: `postgres` if that user exists, else `nobody`.
   * Ignored when not running as root.
   */
  osUser?: string;
  /** Database name in the connection strings. Default `postgres`; created when different. */
  database?: string;
  /** Parent of the temporary directory. Default `os.tmpdir()`. */
  baseDir?: string;
  /** Time allowed for each process to become ready, in ms. Default 60000. */
  startTimeoutMs?: number;
  /** Container image for the `containers` provider. Default `postgres:17`. */
  image?: string;
  /** Redis image for the `containers` provider. Default `redis:7`. */
  redisImage?: string;
  /**
   * Also create the application role `app` (password `app`): a login that is not superuser and
   * has no monitoring role, allowed to create tables in `public` and to use everything the
   * superuser creates. Each node's `appConnectionString` connects as it. Default `false`.
   */
  appRole?: boolean;
}

/** {@link ClusterOptions} with every default filled in. */
export interface ResolvedClusterOptions {
  replicas: number;
  redis: boolean;
  provider: ClusterProvider;
  upstreams: Record<string, string>;
  applyDelayMs: number;
  settings: Record<string, SettingValue>;
  pgBin: string | undefined;
  redisServer: string | undefined;
  osUser: string | undefined;
  database: string;
  baseDir: string | undefined;
  startTimeoutMs: number;
  image: string;
  redisImage: string;
  appRole: boolean;
}

const KNOWN: ReadonlyArray<keyof ClusterOptions> = [
  'replicas',
  'redis',
  'provider',
  'upstreams',
  'applyDelayMs',
  'settings',
  'pgBin',
  'redisServer',
  'osUser',
  'database',
  'baseDir',
  'startTimeoutMs',
  'image',
  'redisImage',
  'appRole',
];

const MAX_REPLICAS = 16;

function invalid(message: string): ReplicaRouterError {
  return new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `startCluster: ${message}`);
}

function nonNegativeInteger(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalid(`${name} must be an integer from 0 to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function optionalString(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw invalid(`${name} must be a non-empty string`);
  return value;
}

const SETTING_NAME = /^[a-z_][a-z0-9_.]*$/i;
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/**
 * Checks options once, before anything is started, and fills in defaults.
 * Mistakes raise `ERR_PGRR_INVALID_OPTION` with a hint.
 */
export function resolveClusterOptions(options: ClusterOptions = {}): ResolvedClusterOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalid('options must be an object');
  }
  for (const key of Object.keys(options)) {
    if (!(KNOWN as readonly string[]).includes(key)) {
      const hint = suggest(key, KNOWN);
      throw invalid(`unknown option "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`);
    }
  }
  const provider = options.provider ?? 'auto';
  if (!['native', 'containers', 'auto'].includes(provider)) {
    throw invalid(`provider must be 'native', 'containers' or 'auto', got ${JSON.stringify(provider)}`);
  }
  for (const flag of ['redis', 'appRole'] as const) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') throw invalid(`${flag} must be a boolean`);
  }
  const settings = options.settings ?? {};
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
    throw invalid('settings must be an object of postgresql.conf names to values');
  }
  for (const [name, value] of Object.entries(settings)) {
    if (!SETTING_NAME.test(name)) throw invalid(`settings: "${name}" is not a setting name`);
    if (!['string', 'number', 'boolean'].includes(typeof value)) {
      throw invalid(`settings.${name} must be a string, number or boolean`);
    }
  }
  const database = options.database ?? 'postgres';
  if (!IDENTIFIER.test(database)) {
    throw invalid(`database must be a lower-case identifier, got ${JSON.stringify(database)}`);
  }
  const replicas = nonNegativeInteger('replicas', options.replicas ?? 2, MAX_REPLICAS);
  const upstreams = resolveUpstreams(options.upstreams, replicas);
  if (Object.keys(upstreams).length > 0 && provider === 'containers')
    throw invalid('upstreams (cascading replicas) need the native provider');
  const startTimeoutMs = nonNegativeInteger('startTimeoutMs', options.startTimeoutMs ?? 60_000);
  if (startTimeoutMs < 1000) throw invalid('startTimeoutMs must be at least 1000');
  return {
    replicas,
    redis: options.redis ?? false,
    provider,
    upstreams,
    applyDelayMs: nonNegativeInteger('applyDelayMs', options.applyDelayMs ?? 0, 3_600_000),
    settings: { ...settings },
    pgBin: optionalString('pgBin', options.pgBin),
    redisServer: optionalString('redisServer', options.redisServer),
    osUser: optionalString('osUser', options.osUser),
    database,
    baseDir: optionalString('baseDir', options.baseDir),
    startTimeoutMs,
    image: optionalString('image', options.image) ?? 'postgres:17',
    redisImage: optionalString('redisImage', options.redisImage) ?? 'redis:7',
    appRole: options.appRole ?? false,
  };
}

/** `upstreams` checked: replica names that exist, no replica its own upstream, no cycle. */
function resolveUpstreams(value: unknown, replicas: number): Record<string, string> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid('upstreams must be an object of replica names, e.g. { r2: "r1" }');
  const names = new Set(Array.from({ length: replicas }, (_, i) => `r${i + 1}`));
  const upstreams = { ...(value as Record<string, unknown>) };
  for (const [replica, upstream] of Object.entries(upstreams)) {
    if (!names.has(replica)) throw invalid(`upstreams: "${replica}" is not one of the replicas (${[...names].join(', ') || 'none'})`);
    if (typeof upstream !== 'string' || !names.has(upstream))
      throw invalid(`upstreams.${replica} must name another replica, got ${JSON.stringify(upstream)}`);
    for (let at: string | undefined = upstream, hops = 0; at !== undefined; at = upstreams[at] as string | undefined, hops++) {
      if (at === replica || hops > replicas) throw invalid(`upstreams: ${replica} would stream from itself (a cycle)`);
    }
  }
  return upstreams as Record<string, string>;
}
