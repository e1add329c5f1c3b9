import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import { lossIsNoOutage, pidOf, type Backends } from './backends.js';
import { closed, detach, notAnswered, openBinding, type Binding } from './binding.js';
import type { ClientRegistry } from './client-registry.js';
import type { MonitorView } from './monitor-view.js';
import { waitingAtMax, type NodePool } from './nodes.js';
import type { OtelSpan } from './otel.js';
import { isConnectionError, markNotSent, releaseArg } from './pg-args.js';
import { RevealedConnections } from './revealed.js';
import type { Telemetry } from './telemetry.js';

/**
 * Which pooled connection a checked-out client (`RoutedClient`, the `owner`) is on, over its
 * life: the one it stands for (see `ClientRegistry`), the one it is bound to (checked out by
 * `connect()`, moved to by a statement, left once dead), a hook's, those whose pid it revealed,
 * and giving them back at release. The bound connection's events go on to the owner; released,
 * an 'error' on the owner is that of its idle connection.
 */
export class ClientConnection<C extends EventEmitter> {
  readonly #owner: C;
  readonly #registry: ClientRegistry<C> | undefined;
  readonly #telemetry: Telemetry;
  readonly #monitor: MonitorView;
  #binding: Binding | undefined;
  /** The binding is the connection checked out by `connect()`: the first statement may still move. */
  #provisional = false;
  /** Inside a hook (`onConnect`, `verify`, a 'connect' listener): statements go straight to this connection. */
  hook: pg.PoolClient | undefined;
  #released: boolean;
  /** Connections whose pid this client revealed: held until release (see `RoutedClient#processID`). */
  readonly #revealed: RevealedConnections;
  /** The pooled connection this object stands for (see `ClientRegistry`), if any. */
  #home: pg.PoolClient | undefined;

  /** With a `home` the owner stands for that pooled connection (in `registry`) and waits, released, for {@link checkOut}. */
  constructor(
    owner: C,
    on: { telemetry: Telemetry; monitor: MonitorView; backends: Backends; registry: ClientRegistry<C> | undefined },
    home: pg.PoolClient | undefined,
  ) {
    this.#owner = owner;
    this.#telemetry = on.telemetry;
    this.#monitor = on.monitor;
    this.#registry = on.registry;
    this.#home = home;
    this.#released = home !== undefined;
    if (home) owner.on('error', this.#idleError);
    this.#revealed = new RevealedConnections(on.backends, () => this.#binding);
  }

  /** The connection bound now (undefined when released or between nodes). */
  get binding(): Binding | undefined { return this.#binding; } // prettier-ignore
  get provisional(): boolean { return this.#provisional; } // prettier-ignore
  get released(): boolean { return this.#released; } // prettier-ignore

  /** A checkout: the owner (released) now holds `raw`, a connection of `node` just checked out; its first statement may still move it. */
  checkOut(node: NodePool, raw: pg.PoolClient): void {
    this.#owner.removeListener('error', this.#idleError);
    this.#released = false;
    this.#home = raw;
    this.#binding = this.#attach(node, raw, undefined);
    this.#provisional = true;
  }

  /** Released, the object of an idle connection: an 'error' emitted on it is that connection's (pg-pool removes it). */
  readonly #idleError = (err: unknown) => {
    if (this.#released) this.current()?.emit('error', err);
  };

  /** The connection statements and fields refer to now: a hook's, the bound one, else the one it stands for. */
  current(): pg.PoolClient | undefined {
    const home = this.#home;
    return this.hook ?? this.#binding?.client ?? (home && this.#registry?.peek(home) === this.#owner ? home : undefined);
  }

  /** The pid of the backend the client runs on now (a hook's, else the bound one's, which is then revealed). */
  pid(): number | null {
    if (this.hook) return pidOf(this.hook) ?? null;
    const binding = this.#binding;
    const pid = binding && pidOf(binding.client);
    if (!binding || !pid) return null;
    this.reveal(binding);
    return pid;
  }

  /** The client revealed `binding`'s pid: it holds that connection until release. */
  reveal(binding: Binding): void {
    if (!this.#released) this.#revealed.reveal(binding);
  }

  /** The connection to `node`, opened (under the route span `span`) if the client is not bound there yet. */
  async bind(node: NodePool, span: OtelSpan | undefined): Promise<Binding> {
    if (this.#released) throw closed();
    const provisional = this.#provisional;
    this.#provisional = false;
    if (this.#binding?.node === node) {
      if (this.#binding.stuck) throw notAnswered(this.#binding.stuck);
      if (provisional) this.#binding.span = span; // the connection checked out for it: its span from now on
      return this.#binding;
    }
    this.unbind();
    const held = this.#revealed.usable(node);
    if (held) {
      this.#standFor(held.client);
      return (this.#binding = Object.assign(held, { span })); // back on the connection whose pid it revealed
    }
    let client: pg.PoolClient;
    try {
      client = await this.#telemetry.within(span, () => waitingAtMax(node, () => node.pool.connect()));
    } catch (err) {
      markNotSent(err); // nothing was sent on a connection that never opened
      throw err;
    }
    if (this.#released) {
      client.release(); // released while we waited for the connection
      throw closed();
    }
    this.#standFor(client);
    return (this.#binding = this.#attach(node, client, span));
  }

  /** The owner stands for `raw` now (see `ClientRegistry`). */
  #standFor(raw: pg.PoolClient): void {
    this.#registry?.adopt(raw, this.#owner);
    this.#home = raw;
  }

  #attach(node: NodePool, client: pg.PoolClient, span: OtelSpan | undefined): Binding {
    const owner = this.#owner;
    const binding = openBinding(node, client, span, {
      lost: (err) => this.lost(binding, err),
      // The statements, cursors and streams on the connection get the error: an unheard 'error' must not crash the process.
      emit: (event, args) => (event === 'error' && owner.listenerCount('error') === 0) || owner.emit(event, ...args),
    });
    return binding;
  }

  /**
   * The bound connection died (`err` is the first sign; none when it just ended): report its node
   * if that is a connection failure, and leave a replica outside a transaction.
   */
  lost(binding: Binding, err: Error | undefined): void {
    if (binding.lost) return; // the 'end' after an 'error' says nothing new
    binding.lost = true;
    binding.loss.lose(err ?? new Error('Connection ended'));
    if (err && isConnectionError(err) && !lossIsNoOutage(binding.client)) this.#monitor.reportConnectionFailure(binding.node.name, err);
    binding.lostWith = err;
  }

  /**
   * Before a statement: a dead connection on a replica outside a transaction (`inTransaction`
   * false) holds nothing the statement needs, nor does one no statement ran on yet: it goes, and
   * the statement routes afresh. In a transaction, or on the primary where session state lives, it
   * stays bound, so that nothing runs outside what it held. (Until then it stays checked out, as on pg.)
   */
  leaveDead(inTransaction: boolean): void {
    const binding = this.#binding;
    if (!binding?.lost || inTransaction || !(binding.node.role === 'replica' || this.#provisional)) return;
    this.unbind(binding.lostWith ?? true);
  }

  /** Leaves the bound connection (`err`: destroys it; `retried`: its span ends as retried). */
  unbind(err?: Error | true, retried = false): void {
    const binding = this.#binding;
    if (!binding) return;
    this.#binding = undefined;
    this.#provisional = false;
    if (!this.#released) this.#registry?.leave(binding.client, this.#owner); // moving on: the connection left gets its own object
    this.#telemetry.end(binding.span, err instanceof Error ? err : undefined, retried);
    binding.span = undefined;
    // A connection whose pid was revealed stays with this client until release (unless broken).
    if (!err && !this.#released && this.#revealed.has(binding) && !binding.lost && !binding.stuck) return;
    this.#drop(binding, err ?? binding.stuck);
  }

  /** Gives a connection back to its pool (`err`: destroys it), forgetting a pid it revealed. */
  #drop(binding: Binding, err: Error | true | undefined): void {
    this.#revealed.forget(binding);
    detach(binding);
    binding.client.release(err);
    if (err) binding.loss.lose(err instanceof Error ? err : new Error('Connection destroyed')); // destroyed: nothing answers a close now
  }

  /** `RoutedClient#release`: every connection goes back to its pool (a truthy `err` destroys the bound one). */
  release(err: unknown): void {
    if (this.#released) throw new Error('Release called on client which has already been released to the pool.');
    this.#released = true;
    const arg = releaseArg(err);
    if (arg || !this.#binding) this.#home = undefined; // destroyed, or it stood for none at release
    this.unbind(arg);
    for (const binding of this.#revealed.all()) this.#drop(binding, binding.stuck ?? (binding.lost || undefined));
    if (this.#home) this.#owner.on('error', this.#idleError);
  }
}
