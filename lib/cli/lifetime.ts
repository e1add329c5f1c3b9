import { stillRunning, type ProcessIdentity } from './process-identity.js';

/** Why a long-running command stops: a signal to it, or the end of a process it runs under. */
export type StopCause = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'parent exited';

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** A command's lifetime, from {@link watchLifetime}. */
export interface Lifetime {
  /** Resolves with the first cause to stop. */
  readonly ended: Promise<StopCause>;
  /** Stops watching; until then further signals are absorbed (a Ctrl-C can arrive twice, from the terminal and from npm). */
  dispose(): void;
}

/**
 * Watches for what ends a command that holds resources until told to stop: SIGINT, SIGTERM or
 * SIGHUP, and the end of any process in `chain` (see `ancestors()`), polled every `intervalMs`.
 * The second is what makes a cluster die with npm or a test runner: `npm` hands SIGTERM only to
 * the shell it runs a command in, which dies without passing it on, and nobody signals a
 * process whose parent was SIGKILLed.
 *
 * @example
 * ```ts
 * const chain = ancestors();          // taken first, before a parent can go
 * // … start things …
 * const lifetime = watchLifetime(chain);
 * const cause = await lifetime.ended; // 'SIGINT', …, or 'parent exited'
 * // … stop things …
 * lifetime.dispose();
 * ```
 */
export function watchLifetime(chain: readonly ProcessIdentity[], intervalMs = 200): Lifetime {
  let end: (cause: StopCause) => void = () => {};
  const ended = new Promise<StopCause>((resolve) => (end = resolve));
  const parent = process.ppid;
  const onSignal = (signal: NodeJS.Signals) => end(signal as StopCause);
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  const check = () => {
    // A changed ppid means this process was reparented: its parent ended (any platform).
    if (process.ppid !== parent || !chain.every(stillRunning)) end('parent exited');
  };
  const timer = setInterval(check, intervalMs);
  check();
  return {
    ended,
    dispose: () => {
      clearInterval(timer);
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    },
  };
}

/**
 * Until the returned function is called, SIGINT, SIGTERM and SIGHUP run `cleanup` (synchronously)
 * and still end the process as they would have: by the signal's default action, or through a
 * handler registered later (the test harness' exit hook, which re-raises it when it is alone).
 * For the time before {@link watchLifetime} takes over, e.g. while a cluster starts.
 *
 * @example
 * ```ts
 * const stopCleanup = onStopSignal(() => state.release());
 * const cluster = await startCluster();
 * stopCleanup();
 * ```
 */
export function onStopSignal(cleanup: () => void): () => void {
  const dispose = () => {
    for (const signal of STOP_SIGNALS) process.off(signal, handler);
  };
  const handler = (signal: NodeJS.Signals) => {
    dispose();
    cleanup();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  return dispose;
}
