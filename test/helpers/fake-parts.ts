import { EventEmitter } from 'node:events';
// Database-free parts for the engine (as pg-pool's tests pass a fake Client): a monitor whose
// view the test sets, and node pools that answer the primary-position query from a variable.
import { Engine } from '../../lib/engine.js';
import type { Lsn } from '../../lib/lsn.js';
import { formatLsn } from '../../lib/lsn.js';
import type { NodeState } from '../../lib/node-state.js';
import type { Sample } from '../../lib/monitor-view.js';
import type { MonitorView } from '../../lib/monitor-view.js';
import type { NodeConnectionPool, NodeConfig } from '../../lib/nodes.js';
import { resolveRouterOptions, type RouterOptions } from '../../lib/options.js';
import { PRIMARY_POSITION_SQL } from '../../lib/position-sql.js';
import { PrimaryHistory } from '../../lib/primary-history.js';
import { serverIdOf } from '../../lib/server-ids.js';
import type { WalHistory } from '../../lib/session.js';
import type { LsnStore, StoredPosition } from '../../lib/stores/store.js';
import { mergePosition } from '../../lib/position.js';

export const HISTORY: WalHistory = { systemId: '7000000000000000001', timeline: 1 };

function nodeState(name: string, role: 'primary' | 'replica'): NodeState {
  return {
    name,
    role,
    status: 'up',
    systemId: HISTORY.systemId,
    timeline: HISTORY.timeline,
    sampledAt: -Infinity,
    resetAt: -Infinity,
    pooled: false,
    replayLsn: undefined,
    receiveLsn: undefined,
    insertLsn: undefined,
    lagBytes: undefined,
    lagMs: 0,
    lastPollAt: undefined,
    lastError: undefined,
    failures: 0,
    successes: 1,
  };
}

/** A monitor whose cached view and live answers the test sets. */
export class FakeMonitor implements MonitorView {
  version = 0;
  readonly ready = Promise.resolve();
  readonly primaryReady = Promise.resolve();
  readonly #states = new Map<string, NodeState>();
  readonly #serverIds = new Map<string, string>();
  /** What a live sample of each node answers (undefined: the node cannot answer). */
  readonly live = new Map<string, Lsn | undefined>();
  /** Live samples asked for, by node. */
  readonly sampled: string[] = [];
  readonly primaryHistory = new PrimaryHistory();
  identity: WalHistory = HISTORY;

  constructor(nodes: readonly NodeConfig[]) {
    for (const node of nodes) this.#states.set(node.name, nodeState(node.name, node.role));
  }

  /** Sets a node's cached view (bumps the version, as the real monitor does on every change). */
  set(name: string, patch: Partial<NodeState>): void {
    Object.assign(this.#states.get(name)!, patch);
    this.version++;
  }

  state(name: string): NodeState | undefined {
    return this.#states.get(name);
  }

  states(): NodeState[] {
    return [...this.#states.values()];
  }

  async sample(name: string): Promise<Sample> {
    const sentAt = performance.now();
    this.sampled.push(name);
    const lsn = this.live.get(name);
    if (lsn !== undefined) {
      const state = this.#states.get(name)!;
      if (state.role === 'primary') this.notePrimaryPosition(lsn, sentAt);
      else if (state.replayLsn === undefined || lsn > state.replayLsn) this.set(name, { replayLsn: lsn, sampledAt: sentAt });
    }
    return { lsn, sentAt };
  }

  async watch(node: NodeConfig): Promise<void> {
    this.#states.set(node.name, nodeState(node.name, node.role));
    this.version++;
  }

  async unwatch(name: string): Promise<void> {
    this.#states.delete(name);
    this.version++;
  }

  noteReplayPosition(name: string, lsn: Lsn, sentAt: number): boolean {
    const state = this.#states.get(name);
    if (state?.role !== 'replica') return false;
    if (state.replayLsn === undefined || lsn > state.replayLsn) this.set(name, { replayLsn: lsn, sampledAt: sentAt });
    return true;
  }

  notePrimaryPosition(lsn: Lsn, sentAt: number): Lsn {
    this.primaryHistory.note(lsn, sentAt);
    this.set('primary', { insertLsn: lsn, sampledAt: sentAt });
    return lsn;
  }

  writtenAfter(lsn: Lsn): number | undefined {
    return this.primaryHistory.writtenAfter(lsn);
  }

  primarySampleSince(since: number): { lsn: Lsn; sentAt: number } | undefined {
    return this.primaryHistory.sampleSince(since);
  }

  /** Server ids: derived from the node's name (one fake server per name). */
  serverIdOf(name: string): string | undefined {
    if (!this.#states.has(name)) return undefined;
    let id = this.#serverIds.get(name);
    if (id === undefined) this.#serverIds.set(name, (id = serverIdOf(HISTORY.systemId, name, null, null)));
    return id; // derived once per name, as the real monitor derives it once per poll answer
  }

  nodeOfServer(id: string): string | undefined {
    for (const name of this.#states.keys()) if (this.serverIdOf(name) === id) return name;
    return undefined;
  }

  primaryIdentity(): WalHistory {
    return this.identity;
  }

  reportConnectionFailure(name: string): void {
    this.set(name, { status: 'down', replayLsn: undefined });
  }

  async close(): Promise<void> {}
}

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });

/**
 * A node pool without a server: the primary-position query answers `lsn`; any other statement
 * answers `{ rows: [{ node }] }` unless `fail` says otherwise; `down` refuses every connection.
 * `connect()` hands out a {@link FakeClient}, after `connectGate` resolves when one is set.
 */
export class FakePool {
  lsn: Lsn = 0n;
  down = false;
  /** An error for the next statement (then cleared). */
  fail: Error | undefined;
  /** When set, connect() waits for it. */
  connectGate: Promise<void> | undefined;
  readonly queries: string[] = [];
  readonly clients: FakeClient[] = [];
  totalCount = 0;
  idleCount = 0;
  waitingCount = 0;
  expiredCount = 0;

  constructor(readonly name: string) {}

  async query(text: string | { text: string }): Promise<{ rows: Array<Record<string, string>> }> {
    const sql = typeof text === 'string' ? text : text.text;
    this.queries.push(sql);
    if (this.down) throw refused();
    if (sql === PRIMARY_POSITION_SQL) return { rows: [{ lsn: formatLsn(this.lsn) }] };
    const fail = this.fail;
    this.fail = undefined;
    if (fail) throw fail;
    return { rows: [{ node: this.name }] };
  }

  /** How many times the primary's position was read on this pool. */
  get positionReads(): number {
    return this.queries.filter((q) => q === PRIMARY_POSITION_SQL).length;
  }

  async connect(): Promise<FakeClient> {
    if (this.connectGate) await this.connectGate;
    if (this.down) throw refused();
    const client = new FakeClient(this);
    this.clients.push(client);
    return client;
  }

  on(): this {
    return this;
  }

  async end(): Promise<void> {}
}

/** A checked-out connection of a {@link FakePool}: runs statements on it, records its release. */
export class FakeClient extends EventEmitter {
  released: unknown = false;

  constructor(readonly pool: FakePool) {
    super();
  }

  query(text: string | { text: string }): Promise<{ rows: Array<Record<string, string>> }> {
    return this.pool.query(text);
  }

  release(err?: unknown): void {
    this.released = err ?? true;
  }
}

/** A store that records its calls and can fail, forget, or hold a given value. */
export class RecordingStore implements LsnStore {
  readonly values = new Map<string, StoredPosition | null>();
  readonly raises: Array<{ key: string; next: StoredPosition; loaded: StoredPosition | undefined }> = [];
  gets = 0;
  failing = false;

  async get(key: string): Promise<StoredPosition | undefined | null> {
    this.gets++;
    if (this.failing) throw new Error('store down');
    return this.values.get(key);
  }

  async raise(key: string, next: StoredPosition, loaded: StoredPosition | undefined): Promise<void> {
    if (this.failing) throw new Error('store down');
    this.raises.push({ key, next, loaded });
    const current = this.values.get(key);
    this.values.set(key, mergePosition(current ?? undefined, next, loaded));
  }
}

export interface FakeEngine {
  engine: Engine;
  monitor: FakeMonitor;
  /** The primary's pool (answers position reads). */
  primary: FakePool;
  /** Every node's pool, by name. */
  pools: ReadonlyMap<string, FakePool>;
  store: RecordingStore;
}

/** An engine over fake parts: a primary and replicas r1, r2 (by default), no database. */
export function fakeEngine(options: Partial<RouterOptions> = {}): FakeEngine {
  const store = new RecordingStore();
  let monitor: FakeMonitor | undefined;
  const pools = new Map<string, FakePool>();
  const resolved = resolveRouterOptions({
    primary: { connectionString: 'postgres://app@primary.invalid/app' },
    replicas: [
      { name: 'r1', connectionString: 'postgres://app@r1.invalid/app' },
      { name: 'r2', connectionString: 'postgres://app@r2.invalid/app' },
    ],
    store,
    logger: false,
    telemetry: false,
    ...options,
  });
  const engine = new Engine(resolved, {
    pools: (_config, node) => {
      const pool = new FakePool(node.name);
      pools.set(node.name, pool);
      return pool as unknown as NodeConnectionPool;
    },
    monitor: (nodes) => (monitor = new FakeMonitor(nodes)),
  });
  return { engine, monitor: monitor!, primary: pools.get('primary')!, pools, store };
}
