// Small helpers shared by the scale benchmark's parts (test/bench/scale*.ts).
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Cluster, NodeHandle } from '../../lib/testing/index.js';

export { median } from './rounds.js';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export const fixed = (value: number, digits = 1): number => Number(value.toFixed(digits));

/** A node's connection string as the application role (the cluster is started with `appRole: true`). */
export const appUrl = (node: NodeHandle): string => node.appConnectionString ?? node.connectionString;

/** Router options for `cluster`'s primary and its first `replicas` replicas, as the application role. */
export function clusterNodes(cluster: Cluster, replicas = cluster.replicas.length) {
  return {
    primary: { connectionString: appUrl(cluster.primary) },
    replicas: cluster.replicas.slice(0, replicas).map((r) => ({ name: r.name, connectionString: appUrl(r) })),
  };
}

let collector: (() => void) | undefined;

/**
 * A full garbage collection: `global.gc` when the process runs with `--expose-gc`; otherwise the
 * same function, obtained at run time (the V8 flag set now, `gc` taken from a fresh context).
 */
export function gcMode(): 'expose-gc' | 'runtime-flag' {
  return typeof globalThis.gc === 'function' ? 'expose-gc' : 'runtime-flag';
}

function collect(): void {
  if (!collector) {
    if (typeof globalThis.gc === 'function') collector = globalThis.gc as () => void;
    else {
      v8.setFlagsFromString('--expose-gc');
      collector = runInNewContext('gc') as () => void;
    }
  }
  collector();
}

/** `heapUsed` and `arrayBuffers` (bytes) after several full collections (finalizers and weak refs settle in between). */
export async function memoryAfterGc(): Promise<{ heapUsed: number; arrayBuffers: number }> {
  for (let i = 0; i < 4; i++) {
    collect();
    await sleep(10);
  }
  collect();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return { heapUsed, arrayBuffers };
}
