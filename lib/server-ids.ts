import { createHash } from 'node:crypto';
import { formatUncovered, parseUncovered } from './uncovered.js';

/**
 * Node names are local: `r1` means a server only in the process whose config chose it. Positions
 * that leave the process (the store, tokens) name the servers of their uncovered reads by an id
 * that any process reaching the same server derives alike, and that a different server — or the
 * same one after a restart — never has: a hash of the WAL system identifier, the postmaster's
 * start time, and the server's own address and port.
 */
export const SERVER_ID = /^x\.[0-9a-f]{12}$/;

/** The id of the server a poll answered from. */
export function serverIdOf(systemId: string | undefined, started: string, address: string | null, port: number | null): string {
  const digest = createHash('sha256')
    .update(`${systemId ?? ''}|${started}|${address ?? ''}|${port ?? ''}`)
    .digest('hex');
  return `x.${digest.slice(0, 12)}`;
}

/**
 * The uncovered reads of a position leaving the process, local names turned into server ids.
 * A replica whose id is not known yet (not polled) cannot be named: then `'primary'` (sample the
 * primary first), never a name another process would read as its own server.
 */
export function toShared(node: string | undefined, idOf: (name: string) => string | undefined): string | undefined {
  if (node === undefined || node === 'primary') return node;
  if (!node.includes(',')) return SERVER_ID.test(node) ? node : (idOf(node) ?? 'primary'); // one replica: the common case
  const ids: string[] = [];
  for (const name of node.split(',')) {
    const id = SERVER_ID.test(name) ? name : idOf(name);
    if (id === undefined) return 'primary';
    ids.push(id);
  }
  return formatUncovered(parseUncovered(ids.join(',')));
}

/**
 * The uncovered reads of a position entering the process, server ids turned into our names for
 * those servers. An id we do not know stays as it is: it names no server of ours, so before a
 * replica is used those reads are covered by a sample of the primary.
 */
export function toLocal(node: string | undefined, nameOf: (id: string) => string | undefined): string | undefined {
  if (node === undefined || node === 'primary') return node;
  if (!node.includes(',')) return SERVER_ID.test(node) ? (nameOf(node) ?? node) : 'primary'; // one server: the common case
  const names = node.split(',').map((id) => (SERVER_ID.test(id) ? (nameOf(id) ?? id) : 'primary'));
  return formatUncovered(parseUncovered(names.join(',')));
}
