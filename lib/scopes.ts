import { AsyncLocalStorage } from 'node:async_hooks';
import type { Consistency } from './consistency.js';
import { Session } from './session.js';

/** What one async scope runs as: its session and its overrides of the router's defaults. */
export interface Scope {
  readonly session: Session;
  /** The scope's level; undefined: the router's default. */
  readonly consistency: Consistency | undefined;
  /** Every statement goes to the primary (level `primary` here or in an outer scope). */
  readonly forcePrimary: boolean;
}

// One storage for every router of the process: a scope names its session, and a session belongs
// to the router whose store it was loaded from (requireConsistency() finds it without a router).
const storage = new AsyncLocalStorage<Scope>();

/** The scope `fn` runs in, if any (outside: the process session of each router). */
export function activeScope(): Scope | undefined {
  return storage.getStore();
}

/** Runs `fn` in `scope`. */
export function runInScope<T>(scope: Scope, fn: () => T): T {
  return storage.run(scope, fn);
}

/** A scope for `session` at `level` (undefined: the router's default). The only place scopes are made. */
export function makeScope(session: Session, level: Consistency | undefined, outerForcePrimary = false): Scope {
  return { session, consistency: level, forcePrimary: outerForcePrimary || level === 'primary' };
}

/** The same session at another level; `primary` anywhere outside stays in force. */
export function withLevel(outer: Scope, level: Consistency): Scope {
  return makeScope(outer.session, level, outer.forcePrimary);
}

/** Another session, keeping the outer scope's level. */
export function withSessionOf(outer: Scope, session: Session): Scope {
  return { session, consistency: outer.consistency, forcePrimary: outer.forcePrimary };
}

/** A router's scopes: outside any scope the process is one session, kept in memory. */
export class Scopes {
  readonly #process: Scope = makeScope(new Session(undefined), undefined);

  current(): Scope {
    return storage.getStore() ?? this.#process;
  }
}
