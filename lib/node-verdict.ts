import type { NodeState } from './node-state.js';

/** Whether routing uses a node, and why, in words a person configuring the router can act on. */
export interface NodeVerdict {
  readonly node: string;
  /** A replica in rotation (reads may go there), or the primary up. */
  readonly serving: boolean;
  /** `ok`, or what is wrong: `down`, `primary-as-replica`, `not-replica`, `other-cluster`, `other-history`, `unknown`. */
  readonly problem: 'ok' | 'down' | 'primary-as-replica' | 'not-replica' | 'other-cluster' | 'other-history' | 'unknown';
  readonly message: string;
}

/**
 * The monitor's view of a node turned into a verdict: used by the start-up warnings of
 * `createRouter()` and by `router.doctor()`, so both say the same thing about the same state.
 */
export function nodeVerdict(state: NodeState, primary: NodeState | undefined): NodeVerdict {
  const node = state.name;
  const says = (problem: NodeVerdict['problem'], serving: boolean, message: string): NodeVerdict => ({ node, serving, problem, message });
  const role = state.role === 'primary' ? 'the primary' : `replica ${node}`;
  switch (state.status) {
    case 'up':
      return says('ok', true, state.role === 'primary' ? 'the primary is up' : `replica ${node} is up and in rotation`);
    case 'unknown':
      return says('unknown', false, `${role} has not been polled yet`);
    case 'down':
      return says(
        'down',
        false,
        `${role} is unreachable${state.lastError ? ` (${state.lastError})` : ''}; ` +
          (state.role === 'primary' ? 'writes and reads that need the primary fail until it answers' : 'its reads go to other nodes'),
      );
    case 'not-replica':
      if (primary?.serverId !== undefined && primary.serverId === state.serverId) {
        return says(
          'primary-as-replica',
          false,
          `replica ${node} is the primary itself (same server): its URL is the primary's; out of rotation`,
        );
      }
      return says(
        'not-replica',
        false,
        `replica ${node} is not in recovery (pg_is_in_recovery() is false): a primary, or a promoted replica; out of rotation`,
      );
    case 'other-history':
      if (state.systemId !== undefined && primary?.systemId !== undefined && state.systemId !== primary.systemId) {
        return says(
          'other-cluster',
          false,
          `replica ${node} belongs to another cluster (system identifier ${state.systemId}, the primary's is ${primary.systemId}); out of rotation`,
        );
      }
      return says(
        'other-history',
        false,
        `replica ${node} follows another WAL history than the primary (another timeline, or it is ahead of the primary); out of rotation`,
      );
  }
}
