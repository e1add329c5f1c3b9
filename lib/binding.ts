import type pg from 'pg';
import { ConnectionLoss } from './connection-loss.js';
import type { NodePool } from './nodes.js';
import type { OtelSpan } from './otel.js';
import { isConnectionError, markNotSent } from './pg-args.js';

/** pg's message for a statement on a client that was released or ended. */
export const CLOSED = 'Client was closed and is not queryable';

/** A checked-out client's connection to one node (see `RoutedClient`). */
export interface Binding {
  node: NodePool;
  client: pg.PoolClient;
  forward: Map<string, (...args: unknown[]) => void>;
  /** The routing span of this binding: the client's statements on this node nest under it. */
  span: OtelSpan | undefined;
  /** Cursors or streams still open on this connection. */
  open: number;
  /** Closes waiting on this connection, completed once it is lost or destroyed. */
  loss: ConnectionLoss;
  /** The first sign that the connection died was handled (its node reported if need be). */
  lost: boolean;
  /** That first sign, if it was an error. */
  lostWith?: Error | undefined;
  /** A statement's answer did not come in time: it may still be running (or sitting in the network). */
  stuck: Error | undefined;
}

const CLIENT_EVENTS = ['error', 'notice', 'notification', 'end', 'drain'] as const;

/**
 * A binding of `client` (just checked out of `node`'s pool) that forwards its events: pg emits
 * 'error' on a client whose connection died, then 'end' (`lost` hears both, with the error or
 * none), and every event goes on to `emit`.
 */
export function openBinding(
  node: NodePool,
  client: pg.PoolClient,
  span: OtelSpan | undefined,
  on: { lost(err: Error | undefined): void; emit(event: string, args: unknown[]): void },
): Binding {
  const forward = new Map<string, (...args: unknown[]) => void>();
  for (const event of CLIENT_EVENTS) {
    const listener = (...args: unknown[]) => {
      if (event === 'error') on.lost(args[0] instanceof Error ? args[0] : new Error(String(args[0])));
      if (event === 'end') on.lost(undefined);
      on.emit(event, args);
    };
    forward.set(event, listener);
    client.on(event, listener);
  }
  return { node, client, forward, span, open: 0, loss: new ConnectionLoss(), lost: false, stuck: undefined };
}

/** Stops forwarding a binding's events (before its connection goes back to its pool). */
export function detach(binding: Binding): void {
  for (const [event, listener] of binding.forward) binding.client.removeListener(event, listener);
}

/** A statement of a client released before it ran: never sent (so never a write), never retried. */
export function closed(): Error {
  const err = new Error(CLOSED);
  markNotSent(err);
  return err;
}

/**
 * A statement refused without being sent: the one before it on the connection never answered
 * (pg would queue it behind that one). Same code as the timeout, `ERR_PGRR_NODE_TIMEOUT`.
 */
export function notAnswered(cause: Error): Error {
  const err = new Error(`The connection's earlier statement did not answer in time (${cause.message}); release the client`, { cause });
  (err as { code?: unknown }).code = (cause as { code?: unknown }).code;
  markNotSent(err);
  return err;
}

/** An error after which the connection is gone: a connection error, or a FATAL one from the server. */
export function diedWith(err: unknown): err is Error {
  return err instanceof Error && (isConnectionError(err) || (err as { severity?: unknown }).severity === 'FATAL');
}
