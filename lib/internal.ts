import type { Engine } from './engine.js';

// The engine behind each router, for the adapters in this package (not a public API).
const engines = new WeakMap<object, Engine>();

export function registerEngine(router: object, engine: Engine): void {
  engines.set(router, engine);
}

export function engineOf(router: object): Engine | undefined {
  return engines.get(router);
}
