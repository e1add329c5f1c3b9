import type pg from 'pg';
import { isConsistency, type Consistency } from './consistency.js';
import { ErrorCodes, ReplicaRouterError } from './errors.js';
import type { MonitorOptions } from './monitor-view.js';
import { memoryStore } from './stores/memory.js';
import type { LsnStore } from './stores/store.js';
import { SERVER_ID } from './server-ids.js';
import { checkKnownKeys } from './suggest.js';
import { rateLimited, type Logger } from './log.js';
import { checkPoolConfig } from './pool-config.js';
import { debugSink, type DebugDecision, type DebugSink } from './debug-log.js';
import type { StoreGuardOptions } from './stores/guard.js';

/** A replica's pool configuration: a `pg.PoolConfig` plus an optional name. */
export type ReplicaConfig = pg.PoolConfig & { name?: string };

/**
 * Options for {@link createRouter}.
 */
export interface RouterOptions {
  /** The primary's `pg.PoolConfig` (e.g. `{ connectionString }`). */
  primary: pg.PoolConfig;
  /**
   * One entry per replica *server*: the replay check and the query must reach the same server,
   * so never put a load balancer that spreads one address over several replicas here.
   */
  replicas?: ReplicaConfig[];
  /** Where session positions are kept between scopes. Default {@link memoryStore}. */
  store?: LsnStore;
  /** Default consistency level. Default `'session'`. */
  consistency?: Consistency;
  /**
   * How long a read may wait for a replica to catch up to its floor before going to the
   * primary, in ms. Default 0 (check once, then fall back).
   */
  maxWaitMs?: number;
  /** Replica monitor settings. */
  monitor?: Partial<MonitorOptions>;
  /** More functions with side effects (`name` or `prefix*`): SELECTs calling them go to the primary. */
  writeFunctions?: string[];
  /** Classified statements remembered (LRU, keyed by SQL text). Default 5000. */
  classifierCacheSize?: number;
  /**
   * HMAC key(s) for consistency tokens (`router.currentToken()` / `router.withToken()`), at least
   * 16 bytes each. With several, the first signs and all verify (key rotation).
   */
  tokenSecret?: string | Buffer | Array<string | Buffer>;
  /** Each store call is abandoned after this long, in ms (then reads needing a floor use the primary). Default 50. */
  storeTimeoutMs?: number;
  /** Circuit breaker around the store: `failures` in a row open it for `cooldownMs`. Default `{ failures: 3, cooldownMs: 1000 }`. */
  storeBreaker?: { failures?: number; cooldownMs?: number };
  /** Where store outages, corrupt positions and rejected tokens are reported (at most once a minute per kind). Default `console`; `false` for silence. */
  logger?: Logger | false;
  /**
   * Spans and metrics through `@opentelemetry/api` when it is installed (no cost to speak of
   * without an SDK). Default true.
   */
  telemetry?: boolean;
  /**
   * An opt-in log of every routing decision (node, reason, floor), for when tracing is not set
   * up: `true` writes one line per decision to stderr, a function receives each decision.
   * Default: on when the `DEBUG` environment variable names `pg-replica-router` (as the `debug`
   * package reads it), else off.
   *
   * @example
   * ```ts
   * import { createRouter } from 'pg-replica-router';
   *
   * const router = createRouter({
   *   primary: { connectionString: 'postgres://app@db1/app' },
   *   debug: (d) => console.log(`${d.node} ${d.reason} floor=${d.floor}`),
   * });
   * ```
   */
  debug?: boolean | ((decision: DebugDecision) => void);
}

export interface ResolvedRouterOptions {
  primary: pg.PoolConfig;
  replicas: Array<{ name: string; config: pg.PoolConfig }>;
  store: LsnStore;
  consistency: Consistency;
  maxWaitMs: number;
  monitor: MonitorOptions;
  writeFunctions: string[];
  classifierCacheSize: number;
  tokenSecrets: Buffer[];
  storeGuard: StoreGuardOptions;
  logger: Logger | false;
  telemetry: boolean;
  debug: DebugSink;
}

const KNOWN = [
  'primary',
  'replicas',
  'store',
  'consistency',
  'maxWaitMs',
  'monitor',
  'writeFunctions',
  'classifierCacheSize',
  'tokenSecret',
  'storeTimeoutMs',
  'storeBreaker',
  'logger',
  'telemetry',
  'debug',
];
const MONITOR_KNOWN = ['intervalMs', 'timeoutMs', 'downAfter', 'upAfter'];

function invalid(message: string): ReplicaRouterError {
  return new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `createRouter: ${message}`);
}

function checkKeys(where: string, value: object, known: string[]): void {
  checkKnownKeys(value, known, invalid, where);
}

function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Warns once per message (unknown pg settings at creation). */
type ConfigWarn = (message: string) => void;

function poolConfig(name: string, value: unknown, warn: ConfigWarn): pg.PoolConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`${name} must be a pg.PoolConfig object, e.g. { connectionString: 'postgres://…' }`);
  }
  checkPoolConfig(name, value as pg.PoolConfig, invalid, warn);
  return value as pg.PoolConfig;
}

/** The router's logger for warnings about its configuration, at most once per message. */
export function configWarn(logger: Logger | false): ConfigWarn {
  const warn = rateLimited(logger);
  return (message) => warn(`config:${message}`, message);
}

/** Checks options once, at creation, and fills in defaults. */
export function resolveRouterOptions(options: RouterOptions): ResolvedRouterOptions {
  if (options === null || typeof options !== 'object') throw invalid('options must be an object with at least { primary }');
  checkKeys('', options, KNOWN);
  if (options.primary === undefined) throw invalid('primary is required: { primary: { connectionString } }');
  const logger = options.logger === undefined ? console : options.logger;
  if (logger !== false && typeof logger?.warn !== 'function')
    throw invalid('logger must have a warn(message, details) method, or be false');
  const warn = configWarn(logger);
  const primary = poolConfig('primary', options.primary, warn);

  const replicas = resolveReplicas(options.replicas ?? [], warn);

  const consistency = options.consistency ?? 'session';
  if (!isConsistency(consistency)) {
    throw invalid(
      `consistency must be 'primary', 'session', 'read-your-writes', 'eventual' or { maxStalenessMs: number ≥ 0 }, got ${JSON.stringify(consistency)}`,
    );
  }

  const store = options.store ?? memoryStore();
  if (typeof store?.get !== 'function' || typeof store.raise !== 'function') {
    throw invalid('store must implement LsnStore ({ get(key), raise(key, position) }); see memoryStore()');
  }

  const monitor = options.monitor ?? {};
  if (typeof monitor !== 'object' || monitor === null) throw invalid('monitor must be an object');
  checkKeys('monitor.', monitor, MONITOR_KNOWN);

  const writeFunctions = options.writeFunctions ?? [];
  if (!Array.isArray(writeFunctions) || writeFunctions.some((f) => typeof f !== 'string' || !/^[A-Za-z_][A-Za-z0-9_$]*\*?$/.test(f))) {
    throw invalid('writeFunctions must be an array of function names (a trailing * matches a prefix)');
  }

  if ('tokenSecret' in options && options.tokenSecret === undefined) {
    throw invalid('tokenSecret is undefined: is its environment variable set? Leave the option out to run without consistency tokens');
  }
  const secrets = options.tokenSecret === undefined ? [] : Array.isArray(options.tokenSecret) ? options.tokenSecret : [options.tokenSecret];
  const tokenSecrets = secrets.map((secret, i) => {
    if (typeof secret !== 'string' && !Buffer.isBuffer(secret))
      throw invalid('tokenSecret must be a string, a Buffer, or an array of them');
    const bytes = Buffer.from(secret);
    if (bytes.length < 16)
      throw invalid(
        `tokenSecret${secrets.length > 1 ? `[${i}]` : ''} must be at least 16 bytes (use a random secret, e.g. crypto.randomBytes(32))`,
      );
    return bytes;
  });

  const breaker = options.storeBreaker ?? {};
  if (typeof breaker !== 'object' || breaker === null) throw invalid('storeBreaker must be an object { failures?, cooldownMs? }');
  checkKeys('storeBreaker.', breaker, ['failures', 'cooldownMs']);
  if (options.telemetry !== undefined && typeof options.telemetry !== 'boolean') throw invalid('telemetry must be true or false');
  if (options.debug !== undefined && typeof options.debug !== 'boolean' && typeof options.debug !== 'function')
    throw invalid('debug must be true, false or a function (decision) => void');

  return {
    primary,
    replicas,
    tokenSecrets,
    storeGuard: {
      timeoutMs: integer('storeTimeoutMs', options.storeTimeoutMs ?? 50, 1, 60_000),
      failures: integer('storeBreaker.failures', breaker.failures ?? 3, 1, 1000),
      cooldownMs: integer('storeBreaker.cooldownMs', breaker.cooldownMs ?? 1000, 1, 3_600_000),
    },
    logger,
    telemetry: options.telemetry ?? true,
    debug: debugSink(options.debug),
    store,
    consistency,
    maxWaitMs: integer('maxWaitMs', options.maxWaitMs ?? 0, 0, 60_000),
    monitor: {
      intervalMs: integer('monitor.intervalMs', monitor.intervalMs ?? 500, 10, 600_000),
      timeoutMs: integer('monitor.timeoutMs', monitor.timeoutMs ?? 1000, 50, 600_000),
      downAfter: integer('monitor.downAfter', monitor.downAfter ?? 2, 1, 100),
      upAfter: integer('monitor.upAfter', monitor.upAfter ?? 2, 1, 100),
    },
    writeFunctions,
    classifierCacheSize: integer('classifierCacheSize', options.classifierCacheSize ?? 5000, 1, 10_000_000),
  };
}

/**
 * The replica list of `createRouter()` and `router.setReplicas()`, checked: pg settings, names
 * (default `replica1`, `replica2`, … by position), none used twice or reserved.
 */
export function resolveReplicas(list: unknown, warn: ConfigWarn = () => {}): ResolvedRouterOptions['replicas'] {
  if (!Array.isArray(list)) throw invalid('replicas must be an array of pg.PoolConfig & { name? }');
  const names = new Set<string>();
  return list.map((entry: unknown, i) => {
    const { name = `replica${i + 1}`, ...config } = poolConfig(`replicas[${i}]`, entry, warn) as ReplicaConfig;
    if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) {
      throw invalid(`replicas[${i}].name must be 1–64 letters, digits or _.:-, got ${JSON.stringify(name)}`);
    }
    if (name === 'primary' || names.has(name))
      throw invalid(`replicas[${i}].name "${name}" is ${name === 'primary' ? 'reserved' : 'used twice'}`);
    if (SERVER_ID.test(name)) {
      throw invalid(`replicas[${i}].name "${name}" has the form of a server id (x. and 12 hex digits), which is reserved`);
    }
    names.add(name);
    return { name, config };
  });
}
