import type { Submittable } from './pg-args.js';

/**
 * The end of a bound connection (it died, or was destroyed): closes of cursors that would wait
 * on it forever complete instead.
 */
export class ConnectionLoss {
  error: Error | undefined;
  readonly #waiters = new Set<() => void>();

  lose(err: Error): void {
    if (this.error) return;
    this.error = err;
    for (const waiter of this.#waiters) setImmediate(waiter);
    this.#waiters.clear();
  }

  /** Runs `fn` once the connection is lost (soon, if it is already); returns what cancels that. */
  whenLost(fn: () => void): () => void {
    if (this.error) {
      setImmediate(fn);
      return () => {};
    }
    this.#waiters.add(fn);
    return () => this.#waiters.delete(fn);
  }
}

/** pg-cursor's close(): a Cursor's own, or the one a QueryStream delegates to (`stream.cursor`). */
interface Closable {
  close(callback?: (err?: Error) => void): Promise<void> | void;
}

function isClosable(value: unknown): value is Closable {
  return typeof value === 'object' && value !== null && typeof (value as Closable).close === 'function';
}

export function closableOf(submittable: Submittable): Closable | undefined {
  const inner: unknown = (submittable as { cursor?: unknown }).cursor;
  if (isClosable(inner)) return inner;
  return isClosable(submittable) ? submittable : undefined;
}

/**
 * pg-cursor's close() completes on the server's next ReadyForQuery, which never comes on a dead
 * connection (node-postgres #2588, #2642): `cursor.close()` would never return, and a QueryStream
 * — destroyed after a failed read, it closes its cursor first — would never emit 'error' or
 * 'close'. Once the connection is lost, a close completes at once: nothing is left to close.
 */
export function closeOnLoss(target: Closable, loss: ConnectionLoss): void {
  const close = target.close;
  target.close = function (this: Closable, callback?: (err?: Error) => void): Promise<void> | void {
    if (!callback) return new Promise<void>((resolve, reject) => target.close((err) => (err ? reject(err) : resolve())));
    let done = false;
    let cancel = () => {};
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      cancel();
      callback(err);
    };
    cancel = loss.whenLost(() => finish());
    close.call(this, finish);
  };
}
