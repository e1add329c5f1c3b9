/**
 * A round trip shared by concurrent callers that each need an answer sent at or after a moment of
 * their own (after their write was acknowledged, after their read ended): one in flight that was
 * sent at or after a caller's `notBefore` serves it; otherwise one more, sent once the one in
 * flight is back, serves every caller that came meanwhile (it is sent after all of them asked).
 * At most two are ever in flight or queued, however many callers ask. Used for live samples of a
 * node (`Monitor.sample`) and for reads of the primary's position after writes
 * (`PrimaryPositions.read`).
 *
 * @example
 * ```ts
 * const positions = new SharedRoundTrip((sentAt) => readPosition(sentAt));
 * const sample = await positions.get(acknowledgedAt); // sent at or after acknowledgedAt
 * ```
 */
export class SharedRoundTrip<T> {
  #live: { promise: Promise<T>; sentAt: number } | undefined;
  #next: Promise<T> | undefined;

  /** `send(sentAt)`: one round trip, sent now (`sentAt`: `performance.now()` when it was). */
  constructor(private readonly send: (sentAt: number) => Promise<T>) {}

  /** The answer of a round trip sent at or after `notBefore`. */
  get(notBefore: number): Promise<T> {
    const live = this.#live;
    if (live && live.sentAt >= notBefore) return live.promise;
    if (live) {
      this.#next ??= live.promise.then(
        () => this.#queued(),
        () => this.#queued(),
      );
      return this.#next;
    }
    return this.#sendNow();
  }

  #queued(): Promise<T> {
    this.#next = undefined;
    return this.#sendNow();
  }

  #sendNow(): Promise<T> {
    const sentAt = performance.now();
    const promise = this.send(sentAt);
    const live = { promise, sentAt };
    this.#live = live;
    const done = () => {
      if (this.#live === live) this.#live = undefined;
    };
    promise.then(done, done);
    return promise;
  }
}
