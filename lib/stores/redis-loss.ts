/**
 * How a Redis store notices that the server answering may no longer hold what it acknowledged
 * (`LsnStore.onLoss`): a restart from an older snapshot, a failover to a replica that had not
 * received everything, a server that was made a replica of another and resynchronised.
 */

/** What the loss watch needs of an ioredis client; every member optional. */
export interface RedisEventsLike {
  /** ioredis's events (an EventEmitter): how a connection close is seen. */
  on?(event: string, listener: () => void): unknown;
  off?(event: string, listener: () => void): unknown;
  /** `INFO <section>`: the server's `run_id` and `master_replid`, for the identity check. */
  info?(section: string): Promise<string>;
  /** ioredis `Cluster`s say so; INFO there goes to any node, so they get no identity check. */
  readonly isCluster?: boolean;
}

/**
 * Client events after which the server answering may not hold what was acknowledged before: a
 * closed connection (a restart, a failover, a proxy or network cut: ioredis reconnects, maybe to
 * another server, and replays its queues there), and for a Cluster a node leaving or joining.
 */
const LOSS_EVENTS = ['close', '-node', '+node'] as const;

type Listener = (reason: string) => void;

/**
 * `LsnStore.onLoss` for an ioredis client. Every subscriber hears one loss at once ('first use':
 * what Redis lost before this process is unknown), then one per closed connection or Cluster
 * node change. ioredis emits 'close' (on the next tick) before it can reconnect, so the signal
 * precedes any answer of the server it reconnects to, replayed queues included.
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
  const identity =
    identityCheckMs > 0 && !client.isCluster && typeof client.info === 'function' ? new IdentityCheck(client, emit) : undefined;
  let timer: NodeJS.Timeout | undefined;
  return (listener) => {
    if (listeners.size === 0) {
      for (const [event, handler] of handlers) client.on?.(event, handler);
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
      clearInterval(timer);
    };
  };
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
