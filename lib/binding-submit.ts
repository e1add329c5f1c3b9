import type { EventEmitter } from 'node:events';
import { diedWith, type Binding } from './binding.js';
import { closableOf, closeOnLoss } from './connection-loss.js';
import type { Submittable } from './pg-args.js';
import type { Telemetry } from './telemetry.js';

/**
 * Runs a cursor or stream on a checked-out client's connection. It counts as open on the binding
 * (pinning the client there) until it ends, closes or fails; then `settle` runs once. The first
 * sign of a dead connection may reach the submittable only: it goes to `lost`.
 */
export function submitOn(
  binding: Binding,
  submittable: Submittable,
  telemetry: Telemetry,
  on: { settle(): void; lost(err: Error): void },
): Submittable {
  binding.open++;
  let settled = false;
  const settle = () => {
    if (settled) return;
    settled = true;
    binding.open--;
    on.settle();
  };
  // pg-cursor emits 'end' once its portal is done (read to the end, closed, or failed);
  // pg-query-stream emits 'end' or 'close'.
  const emitter = submittable as unknown as Partial<EventEmitter>;
  emitter.once?.('end', settle);
  emitter.once?.('close', settle);
  emitter.once?.('error', (err: unknown) => {
    // Its client may be released at once, before the connection's own 'error'.
    if (diedWith(err)) on.lost(err);
    settle();
  });
  const closable = closableOf(submittable);
  if (closable) closeOnLoss(closable, binding.loss);
  telemetry.within(binding.span, () => binding.client.query(submittable as never));
  return submittable;
}
