import type { TokenRejection } from './token.js';

/** What the router counted, as `router.topology().counters` reports it. */
export interface Counters {
  /** Round trips that read the primary's position (after writes, to cover reads, after a store's loss); one shared by concurrent callers counts once. */
  positionReads: number;
  /** Round trips that read a replica's replay position live (outside the monitor's polls); one shared by concurrent reads counts once. */
  liveChecks: number;
  storeReads: number;
  storeWrites: number;
  storeErrors: number;
  positionErrors: number;
  corruptPositions: number;
  foreignPositions: number;
  tokensAccepted: number;
  tokensRejected: Record<TokenRejection, number>;
  /** Requests with a credential (`Authorization`) but no session cookie and no session key: clients that keep no cookies. */
  cookielessClients: number;
  /** Requests whose client asked for a level (HTTP adapters' `levelHeader` / `levelQuery`): `honoured` when `clientLevels` allowed it, else `refused`. */
  clientLevels: { honoured: number; refused: number };
}

export function newCounters(): Counters {
  return {
    positionReads: 0,
    liveChecks: 0,
    storeReads: 0,
    storeWrites: 0,
    storeErrors: 0,
    positionErrors: 0,
    corruptPositions: 0,
    foreignPositions: 0,
    tokensAccepted: 0,
    tokensRejected: { malformed: 0, oversized: 0, forged: 0, version: 0, foreign: 0 },
    cookielessClients: 0,
    clientLevels: { honoured: 0, refused: 0 },
  };
}
