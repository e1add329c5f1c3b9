/**
 * pg's callback form of a promise-returning call, in one place: the outcome goes to `done`
 * (`err` undefined on success). Nothing is returned, as pg returns nothing when given a callback.
 */
export function toCallback<T>(promise: Promise<T>, done: (err: Error | undefined, value: T | undefined) => void): undefined {
  promise.then(
    (value) => done(undefined, value),
    (err: unknown) => done(err instanceof Error ? err : new Error(String(err)), undefined),
  );
  return undefined;
}
