/**
 * How a Redis store notices that the server answering may no longer hold what it acknowledged
 * (`LsnStore.onLoss`): a restart from an older snapshot, a failover to a replica that had not
 * received everything, a server that was made a replica of another and resynchronised.
 */

/** What the loss watch needs of an ioredis client; every member optional. */
export interface RedisEventsLike {
  /** ioredis's events (an EventEmitter): how a connection close is seen ('+node' passes the node's client). */
  on?(event: string, listener: (node?: unknown) => void): unknown;
  off?(event: string, listener: (node?: unknown) => void): unknown;
  /** `INFO <section>`: the server's `run_id` and `master_replid`, for the identity check. */
  info?(section: string): Promise<string>;
  /** ioredis `Cluster`s say so; INFO there goes to any node, so they get no identity check. */
  readonly isCluster?: boolean;
  /** The client's options; a `Cluster`'s `scaleReads` says where its reads go (see `redisStore`). */
  readonly options?: object;
  /** A `Cluster`'s clients of its nodes (`cluster.nodes('all')`), whose closes are watched too. */
  nodes?(role: 'all'): unknown[];
}

/**
 * Client events after which the server answering may not hold what was acknowledged before: a
 * closed connection (a restart, a failover, a proxy or network cut: ioredis reconnects, maybe to
 * another server, and replays its queues there), and for a Cluster a node leaving or joining.
 * A Cluster emits 'close' only once every node is gone; one node's restart is seen as '-node'
 * (its client ends: ioredis's default) or, with `clusterNodeRetryStrategy` (its client
 * reconnects in place: no '-node'), only by that node's client: watched too (NODE_EVENTS).
 */
const LOSS_EVENTS = ['close', '-node', '+node'] as const;
/** Events of a Cluster's node clients that are signs: a (re)connection to a node, a closed one. */
const NODE_EVENTS = ['connect', 'close'] as const;

type Listener = (reason: string) => void;

/**
 * `LsnStore.onLoss` for an ioredis client. Every subscriber hears one loss at once ('first use':
 * what Redis lost before this process is unknown), then one per closed connection, and for a
 * Cluster one per node change and per connect or close of a node's client (see LOSS_EVENTS).
 * ioredis emits 'close' and 'connect' (on the next tick) before the server can answer on the new
 * connection, so the signal precedes any answer of the server it reconnects to, replayed queues
 * included.
 *
 * With `identityCheckMs` > 0 (not for a Cluster), the server's `run_id` and `master_replid` are
 * also read every `identityCheckMs` in the background (two INFO commands, one check in flight):
 * a change is a loss too. It catches what keeps the connection open — a proxy in front of a
 * failed-over pair, a master made a replica of another (it resynchronises with that one's data)
 * — within one interval; loads in between are not protected.
 *
 * Listeners on the client and the timer go with the last subscriber.
 */
export function lossWatch(client: RedisEventsLike, identityCheckMs: number): (listener: Listener) => () => void {
  const listeners = new Set<Listener>();
  const emit = (reason: string) => listeners.forEach((l) => l(reason));
  const handlers = LOSS_EVENTS.map((event) => [event, () => emit(`redis ${event}`)] as const);
  const nodes = client.isCluster ? new NodeConnections(client, emit) : undefined;
  const identity =
    identityCheckMs > 0 && !client.isCluster && typeof client.info === 'function' ? new IdentityCheck(client, emit) : undefined;
  let timer: NodeJS.Timeout | undefined;
  return (listener) => {
    if (listeners.size === 0) {
      for (const [event, handler] of handlers) client.on?.(event, handler);
      nodes?.watch();
      if (identity) {
        timer = setInterval(() => identity.check(), identityCheckMs);
        timer.unref();
        identity.check();
      }
    }
    listeners.add(listener);
    listener('first use');
    return () => {
      if (!listeners.delete(listener) || listeners.size > 0) return;
      for (const [event, handler] of handlers) client.off?.(event, handler);
      nodes?.unwatch();
      clearInterval(timer);
    };
  };
}

/**
 * The connections of each node client of a Cluster, those it has when watching starts and those
 * it announces with '+node', until it drops them ('-node'): every 'connect' (ioredis connects a
 * node lazily, at its first command, maybe long after this process's first use; with
 * `clusterNodeRetryStrategy` it reconnects in place) and every 'close'. ioredis emits 'connect'
 * on the next tick, before the node can answer a command. Listeners go with `unwatch()`.
 */
class NodeConnections {
  readonly #watched = new Set<RedisEventsLike>();
  readonly #handlers = NODE_EVENTS.map((event) => [event, () => this.emit(`redis node ${event}`)] as const);

  constructor(
    private readonly cluster: RedisEventsLike,
    private readonly emit: Listener,
  ) {}

  readonly #added = (node?: unknown) => {
    if (!isEmitter(node) || this.#watched.has(node)) return;
    this.#watched.add(node);
    for (const [event, handler] of this.#handlers) node.on(event, handler);
  };

  readonly #removed = (node?: unknown) => {
    if (isEmitter(node) && this.#watched.delete(node)) this.#off(node);
  };

  #off(node: RedisEventsLike): void {
    for (const [event, handler] of this.#handlers) node.off?.(event, handler);
  }

  watch(): void {
    this.cluster.on?.('+node', this.#added);
    this.cluster.on?.('-node', this.#removed);
    for (const node of this.cluster.nodes?.('all') ?? []) this.#added(node);
  }

  unwatch(): void {
    this.cluster.off?.('+node', this.#added);
    this.cluster.off?.('-node', this.#removed);
    for (const node of this.#watched) this.#off(node);
    this.#watched.clear();
  }
}

function isEmitter(node: unknown): node is RedisEventsLike & Required<Pick<RedisEventsLike, 'on'>> {
  return typeof node === 'object' && node !== null && typeof (node as RedisEventsLike).on === 'function';
}

/** The identity of the Redis server answering: which process, and which replication history. */
class IdentityCheck {
  #runId: string | undefined;
  #replId: string | undefined;
  #inFlight = false;

  constructor(
    private readonly client: RedisEventsLike,
    private readonly emit: Listener,
  ) {}

  check(): void {
    if (this.#inFlight) return; // a store that does not answer gets one check, not a queue of them
    this.#inFlight = true;
    Promise.all([this.client.info!('server'), this.client.info!('replication')])
      .then(([server, replication]) => {
        const runId = field(server, 'run_id');
        const replId = field(replication, 'master_replid');
        const changed = (this.#runId !== undefined && runId !== this.#runId) || (this.#replId !== undefined && replId !== this.#replId);
        this.#runId = runId;
        this.#replId = replId;
        if (changed) this.emit('redis identity changed (run_id or master_replid)');
      })
      .catch(() => {}) // failures are the guard's business (and a cut connection emits 'close')
      .finally(() => {
        this.#inFlight = false;
      });
  }
}

/** `name:value` from an INFO reply. */
function field(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1];
}
