import type { Engine } from './engine.js';
import type { RequestScopes } from './request-scope.js';

// The engine behind each router, for this package's own modules and tests (not a public API).
const engines = new WeakMap<object, Engine>();

export function registerEngine(router: object, engine: Engine): void {
  engines.set(router, engine);
}

export function engineOf(router: object): Engine | undefined {
  return engines.get(router);
}

/** What framework adapters use of a router: its request scopes (undefined for anything else). */
export function requestScopesOf(router: object): RequestScopes | undefined {
  return engines.get(router)?.requests;
}
