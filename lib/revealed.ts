import { markTerminated, pidOf, type Backend, type Backends } from './backends.js';
import type { Binding } from './binding.js';
import type { NodePool } from './nodes.js';

/**
 * The connections whose pid a checked-out client revealed (`processID`, `select
 * pg_backend_pid()`): it holds them until release, and a signal sent through the router to one
 * of those pids reaches the backend the client runs on now (see `RoutedClient#processID`).
 */
export class RevealedConnections {
  readonly #held = new Set<Binding>();
  readonly #holder = { current: (pid: number) => this.#target(pid) };
  readonly #backends: Backends;
  readonly #current: () => Binding | undefined;

  /** `current`: the client's binding now. */
  constructor(backends: Backends, current: () => Binding | undefined) {
    this.#backends = backends;
    this.#current = current;
  }

  /** The client revealed `binding`'s pid: hold it. */
  reveal(binding: Binding): void {
    const pid = pidOf(binding.client);
    if (!pid) return;
    if (!this.#held.has(binding)) this.#backends.reveal(pid, this.#holder);
    this.#held.add(binding);
  }

  has(binding: Binding): boolean {
    return this.#held.has(binding);
  }

  /** A held connection of `node` that can still run statements. */
  usable(node: NodePool): Binding | undefined {
    for (const b of this.#held) if (b.node === node && !b.lost && !b.stuck) return b;
    return undefined;
  }

  /** Stops holding `binding` (it goes back to its pool or is destroyed). */
  forget(binding: Binding): void {
    const pid = pidOf(binding.client);
    if (this.#held.delete(binding) && pid) this.#backends.forget(pid, this.#holder);
  }

  all(): Binding[] {
    return [...this.#held];
  }

  /** Where a signal to `pid` goes: the client's current backend, else the held connection with that pid. */
  #target(pid: number): Backend | undefined {
    const bound = this.#current();
    const current = bound && !bound.lost ? pidOf(bound.client) : undefined;
    const target = bound && current ? bound : [...this.#held].find((b) => !b.lost && pidOf(b.client) === pid);
    return target && { node: target.node, pid: pidOf(target.client) ?? pid, terminating: () => markTerminated(target.client) };
  }
}
