// Live checks of replicas' replay positions, each a round trip of its own (the monitor's sample),
// for a read that may wait for a replica (see RoutePlanner.plan).
import type { Lsn } from './lsn.js';
import type { MonitorView } from './monitor-view.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The least a round of live checks waits for the other nodes once one answered behind (ms). */
const ROUND_GRACE_MS = 2;

/**
 * Samples `nodes` live, in parallel, until one is at or past `floor` (each sample raises the
 * monitor's cache, which the next decision reads) or all answered behind; then again every few
 * ms until `maxWaitMs` has passed. Returns the time waited.
 */
export async function checkLive(monitor: MonitorView, nodes: readonly string[], floor: Lsn, maxWaitMs: number): Promise<number> {
  const started = performance.now();
  const deadline = started + maxWaitMs;
  for (let sentAt = started; ; sentAt = performance.now()) {
    if (await anyReady(monitor, nodes, floor, sentAt)) break;
    if (performance.now() >= deadline) break;
    await sleep(Math.min(10, Math.max(1, deadline - performance.now())));
  }
  return maxWaitMs > 0 ? Math.round(performance.now() - started) : 0;
}

/**
 * One live sample of each of `nodes` (taken after `sentAt`): true as soon as one is at or past
 * `floor`; false once all answered behind, or a little after the first did (twice its round
 * trip, at least {@link ROUND_GRACE_MS}): a node that does not answer holds nobody up.
 */
function anyReady(monitor: MonitorView, nodes: readonly string[], floor: Lsn, sentAt: number): Promise<boolean> {
  return new Promise((resolve) => {
    let pending = nodes.length;
    let grace: NodeJS.Timeout | undefined;
    const done = (ready: boolean) => {
      clearTimeout(grace);
      resolve(ready);
    };
    for (const node of nodes) {
      void monitor.sample(node, sentAt).then(({ lsn }) => {
        if (lsn !== undefined && lsn >= floor) return done(true);
        if (--pending === 0) return done(false);
        grace ??= setTimeout(() => done(false), Math.max(ROUND_GRACE_MS, 2 * (performance.now() - sentAt)));
      });
    }
  });
}
