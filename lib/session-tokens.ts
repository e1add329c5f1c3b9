import type { Counters } from './counters.js';
import type { MonitorView } from './monitor-view.js';
import type { Session } from './session.js';
import type { SessionStore } from './session-store.js';
import type { Telemetry } from './telemetry.js';
import type { StoredPosition } from './position.js';
import { toLocal, toShared } from './server-ids.js';
import { decodeToken, encodeToken, type TokenRejection } from './token.js';

type Warn = (kind: string, message: string, details?: Record<string, unknown>) => void;

/** Consistency tokens of sessions: issued with everything a session owes its readers, absorbed by maximum. */
export class SessionTokens {
  constructor(
    /** Verifying keys; the first one signs. */
    readonly secrets: readonly Buffer[],
    readonly sessions: SessionStore,
    readonly monitor: MonitorView,
    readonly counters: Counters,
    readonly telemetry: Telemetry,
    readonly warn: Warn,
  ) {}

  /**
   * A token for `session`: everything it wrote or observed so far (its pending writes
   * positioned first). `load`: include the stored position even if nothing loaded it yet (one
   * store read). When the stored position could not be read, the token carries the primary's
   * current position; when that cannot be read either, it makes its receiver sample the primary
   * first: never less than the session is owed.
   */
  async issue(session: Session, secret: Buffer, load: boolean): Promise<string> {
    if (load && !session.loaded) await this.sessions.ensureLoaded(session);
    // The store could not be read: what the session is owed is unknown, so the token carries the
    // primary's current position (ahead of everything acknowledged so far), never less.
    if (session.floorUnknown) session.resync = true;
    try {
      await this.sessions.position(session, true);
    } catch {
      session.positionUnknown(performance.now());
    }
    if (session.unstamped) session.stamp(this.monitor.primaryIdentity());
    const position = session.position();
    return encodeToken({ ...position, node: toShared(position.node, (name) => this.monitor.serverIdOf(name)) }, secret);
  }

  /** Merges a token into a session; a bad one is counted (and logged), never thrown. */
  absorb(session: Session, token: unknown): void {
    const decoded = decodeToken(token, this.secrets);
    let rejected: TokenRejection | undefined;
    if ('rejected' in decoded) rejected = decoded.rejected;
    else if (session.merge(this.#local(decoded.position), this.monitor.primaryIdentity(), performance.now()))
      this.counters.tokensAccepted++;
    else rejected = 'foreign';
    if (rejected) {
      this.counters.tokensRejected[rejected]++;
      this.telemetry.tokenRejected(rejected);
      this.warn(`token-${rejected}`, `ignored a ${rejected} consistency token`);
    }
  }

  /** A token's position with its server ids turned into our names for those servers. */
  #local(position: StoredPosition): StoredPosition {
    return { ...position, node: toLocal(position.node, (id) => this.monitor.nodeOfServer(id)) };
  }

  /** The token is genuine (signed with one of our secrets, well formed). */
  verifies(token: unknown): boolean {
    return this.secrets.length > 0 && 'position' in decodeToken(token, this.secrets);
  }
}
