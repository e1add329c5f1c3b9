import type pg from 'pg';
import { createRouter, type Router } from 'pg-replica-router';
import type { NodeHandle } from 'pg-replica-router/testing';
import { freePort } from '../../lib/testing/processes.js';
import { urlAs } from './cluster.js';

// Helpers of the checkout tests (pool-checkout.test.ts, pool-lifecycle.test.ts).

/** A router over `primary` alone, with `extra` pg.Pool options on its node pool. */
export function primaryOnly(primary: NodeHandle, extra: pg.PoolConfig = {}): Router {
  return createRouter({
    primary: { connectionString: urlAs(primary), max: 1, ...extra },
    replicas: [],
    monitor: { intervalMs: 100 },
  });
}

/** `connectionString` with its port swapped for one nothing listens on. */
export async function closedPortUrl(connectionString: string): Promise<string> {
  const url = new URL(connectionString);
  url.port = String(await freePort());
  return url.toString();
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Whether `promise` has settled after the event loop had a few turns. */
export async function settledYet(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(50);
  return done;
}

/** Runs `fn` with `router`, closing it after. */
export async function using(router: Router, fn: (router: Router) => Promise<void>): Promise<void> {
  try {
    await fn(router);
  } finally {
    await router.close();
  }
}
