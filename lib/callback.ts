/**
 * pg's callback form of a promise-returning call, in one place: the outcome goes to `done`
 * (`err` undefined on success), on the next tick — outside the promise chain, so an exception
 * thrown by the callback is an uncaught exception, as with pg, not an unhandled rejection.
 * Nothing is returned, as pg returns nothing when given a callback.
 */
export function toCallback<T>(promise: Promise<T>, done: (err: Error | undefined, value: T | undefined) => void): undefined {
  promise.then(
    (value) => process.nextTick(done, undefined, value),
    (err: unknown) => process.nextTick(done, err instanceof Error ? err : new Error(String(err)), undefined),
  );
  return undefined;
}

/**
 * pg's `Promise` option: the promise class pg.Pool and pg.Client build what they return with
 * (`new Promise(…)`, e.g. Bluebird's). `promise` as one of those; itself when the option is unset.
 *
 * @example
 * ```ts
 * return promised(options.Promise, engine.close());
 * ```
 */
export function promised<T>(Class: PromiseConstructorLike | undefined, promise: Promise<T>): Promise<T> {
  if (Class === undefined || Class === Promise) return promise;
  return new Class<T>((resolve, reject) => promise.then(resolve, reject)) as Promise<T>;
}
