import type { StoredPosition } from '../position.js';
import type { LsnStore } from './store.js';

export interface StoreGuardOptions {
  /** Each store call is abandoned after this long, in ms. Default 50. */
  timeoutMs: number;
  /** Consecutive failures that open the circuit. Default 3. */
  failures: number;
  /** How long an open circuit fails calls at once before letting one through, in ms. Default 1000. */
  cooldownMs: number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

type InProcessRead = (key: string) => StoredPosition | undefined | null;

/**
 * Stores whose positions are in this process's memory (`memoryStore()`), by identity, with their
 * synchronous read: their calls are never raced against a timeout, and a load can be had in the
 * same turn ({@link GuardedStore.getNow}). By identity, so that a store made from one (`{
 * ...memoryStore(), get }`) is guarded as any other.
 */
export const inProcessReads = new WeakMap<LsnStore, InProcessRead>();

/** {@link GuardedStore.getNow}: the store cannot answer in this turn. */
export const NOT_NOW: unique symbol = Symbol('pg-replica-router.not-now');

/** A store call that was not made (circuit open) or not answered in time. */
export class StoreUnavailable extends Error {
  constructor(
    readonly reason: 'timeout' | 'circuit-open' | 'error',
    cause?: unknown,
  ) {
    super(`position store unavailable (${reason})`, { cause });
  }
}

/**
 * Wraps a store with short timeouts and a circuit breaker, so that a dead store costs each
 * request at most one timeout until the circuit opens, and then nothing. Calls made while the
 * circuit is open fail at once; after `cooldownMs` one call is let through, and its success
 * closes the circuit (`onRecover` runs then).
 */
export class GuardedStore implements LsnStore {
  #state: CircuitState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #trial = false;
  /** `losses`: signs from the store that it may have lost acknowledged positions (see `LsnStore.onLoss`). */
  readonly counters = { timeouts: 0, errors: 0, shortCircuits: 0, opened: 0, recovered: 0, losses: 0 };

  /** The inner store's synchronous read, when it keeps positions in this process ({@link inProcessReads}). */
  readonly #inProcess: InProcessRead | undefined;

  constructor(
    private readonly inner: LsnStore,
    private readonly options: StoreGuardOptions,
    private readonly events: {
      onOpen?: (err: unknown) => void;
      onRecover?: () => void;
      onError?: (reason: StoreUnavailable['reason']) => void;
    } = {},
  ) {
    this.#inProcess = inProcessReads.get(inner);
  }

  get state(): CircuitState {
    if (this.#state === 'open' && performance.now() - this.#openedAt >= this.options.cooldownMs) return 'half-open';
    return this.#state;
  }

  get(key: string): Promise<StoredPosition | undefined | null> {
    return this.#call(() => this.inner.get(key));
  }

  /**
   * The stored position read in this turn, when the store keeps it in this process and the
   * circuit is closed; otherwise (or if the read throws) {@link NOT_NOW}: use {@link get}.
   */
  getNow(key: string): StoredPosition | undefined | null | typeof NOT_NOW {
    if (!this.#inProcess || this.#state !== 'closed') return NOT_NOW;
    try {
      return this.#inProcess(key);
    } catch {
      return NOT_NOW;
    }
  }

  raise(key: string, next: StoredPosition, loaded: StoredPosition | undefined): Promise<void> {
    return this.#call(() => this.inner.raise(key, next, loaded));
  }

  /** The inner store's signs of loss, counted; a store without `onLoss` never reports one. */
  onLoss(listener: (reason: string) => void): () => void {
    return (
      this.inner.onLoss?.((reason) => {
        this.counters.losses++;
        listener(reason);
      }) ?? (() => {})
    );
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    const state = this.state;
    if (state === 'open' || (state === 'half-open' && this.#trial)) {
      this.counters.shortCircuits++;
      this.events.onError?.('circuit-open');
      throw new StoreUnavailable('circuit-open');
    }
    const trial = state === 'half-open';
    if (trial) this.#trial = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const call = Promise.resolve().then(fn);
      // A store in this process's memory answers in this turn or never fails to: no timer to race.
      const result = this.#inProcess
        ? await call
        : await Promise.race([
            call,
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new StoreUnavailable('timeout')), this.options.timeoutMs);
            }),
          ]);
      this.#succeeded();
      return result;
    } catch (err) {
      if (err instanceof StoreUnavailable) this.counters.timeouts++;
      else this.counters.errors++;
      this.events.onError?.(err instanceof StoreUnavailable ? 'timeout' : 'error');
      this.#failed(err);
      throw err instanceof StoreUnavailable ? err : new StoreUnavailable('error', err);
    } finally {
      clearTimeout(timer);
      if (trial) this.#trial = false;
    }
  }

  #succeeded(): void {
    const wasOpen = this.#state === 'open';
    this.#failures = 0;
    this.#state = 'closed';
    if (wasOpen) {
      this.counters.recovered++;
      this.events.onRecover?.();
    }
  }

  #failed(err: unknown): void {
    this.#failures++;
    if (this.#state === 'open') {
      this.#openedAt = performance.now(); // the trial failed: wait another cooldown
      return;
    }
    if (this.#failures >= this.options.failures) {
      this.#state = 'open';
      this.#openedAt = performance.now();
      this.counters.opened++;
      this.events.onOpen?.(err);
    }
  }
}
