import type { Consistency } from './consistency.js';
import type { Attributes } from './otel.js';
import { activeScope, makeScope, runInScope, withLevel, type Scope } from './scopes.js';
import { Session, type StoreOutcome } from './session.js';
import type { SessionStore } from './session-store.js';
import type { SessionTokens } from './session-tokens.js';
import { ATTR, type Telemetry } from './telemetry.js';

/** What a framework adapter knows about an incoming request. */
export interface RequestInfo {
  /** The session key (a user, a cookie); undefined for a token-only client (kept in memory). */
  readonly key: string | undefined;
  /** An incoming consistency token, if any (verified and merged here; a bad one is ignored). */
  readonly token: unknown;
  /** The request's level when it differs from the router's default. */
  readonly consistency: Consistency | undefined;
  /** Attributes of the request span (`pgrr.request`). */
  readonly spanAttributes: Attributes;
  /** Whether the response can carry a token (else none is made). */
  readonly issueToken: boolean;
  /** The session is brand new (its identity was issued by this request): it owes nothing yet. */
  readonly fresh?: boolean;
  /**
   * A position an earlier response handed the client because it could not be stored (the
   * adapter's position cookie): verified and merged like `token`; a bad one is ignored.
   */
  readonly carried?: unknown;
}

/** What finishing a request scope gave. */
export interface FinishOutcome {
  /** The first time: the token for the response (when it can carry one and the session is not empty). */
  readonly token: string | undefined;
  /**
   * The session's position, signed, when it could not be stored (a store write failed, or a
   * carried position has no key to be stored under): the response must carry it to the client
   * (a cookie) so the next request, on any instance, honours it. Undefined when stored (or when
   * there is no `tokenSecret` to sign it with).
   */
  readonly unstored: string | undefined;
  /** The session's position is in the store (or there was nothing to store): a carried one can go. */
  readonly stored: boolean;
}

/** One request's scope, from the adapter's point of view. */
export interface RequestScope {
  /** Runs the rest of the request (the framework's `next`) as this request's session and span. */
  run<T>(fn: () => T): T;
  /**
   * Stores the session's position (under `currentKey` too, when the key changed during the
   * request: a login) and, the first time, returns the token for the response; and the position
   * itself, signed, when it could not be stored. Call it before the response's first byte and
   * again before its last; it never rejects, and calls run one at a time.
   */
  finish(currentKey?: string): Promise<FinishOutcome>;
  /** What loading the session's position gave (for logs and spans). */
  readonly storeOutcome: StoreOutcome;
  /** The response is done: ends the request span. */
  close(): void;
}

/**
 * The narrow API framework adapters (Express, and later others) use: open a request scope, run
 * the handler in it, finish it before the response goes out. Nothing else of the router.
 */
export class RequestScopes {
  constructor(
    /** The router's default level (a client may ask for stronger, never weaker). */
    readonly defaultLevel: Consistency,
    readonly sessions: SessionStore,
    readonly tokens: SessionTokens,
    readonly telemetry: Telemetry,
  ) {}

  #warnedUnsigned = false;

  /**
   * A position could not be stored and there is no secret to sign it for the response: another
   * instance may serve the session's next request from the older stored position. Once.
   */
  #warnUnsigned(): void {
    if (this.#warnedUnsigned) return;
    this.#warnedUnsigned = true;
    this.sessions.warn(
      'unstored-unsigned',
      'a session position could not be stored and no tokenSecret is set to carry it in the response; ' +
        'another instance may serve that session older data: set createRouter({ tokenSecret })',
    );
  }

  /** The token is genuine (signed with one of the router's secrets, well formed). */
  verifies(token: unknown): boolean {
    return this.tokens.verifies(token);
  }

  open(request: RequestInfo): RequestScope {
    const session = new Session(request.key, request.fresh ?? false);
    const secret = this.tokens.secrets[0];
    if (request.token !== undefined && secret) this.tokens.absorb(session, request.token);
    if (request.carried !== undefined && secret) this.tokens.absorb(session, request.carried);
    const scope = makeScope(session, request.consistency);
    const span = this.telemetry.startRequestSpan(request.spanAttributes);
    const issueToken = request.issueToken && secret !== undefined;
    let chain: Promise<unknown> = Promise.resolve();
    let first = true;
    const finishOnce = async (currentKey: string | undefined, first: boolean): Promise<FinishOutcome> => {
      let stored = await this.sessions.persist(session).then(
        () => true,
        () => false,
      );
      // The session's key changed during the request (login, session regeneration): the new
      // key must carry what this request wrote too.
      if (currentKey !== undefined && currentKey !== session.key) {
        const storedUnderNew = await this.sessions.persist(session, currentKey).then(
          () => true,
          () => false,
        );
        stored &&= storedUnderNew;
      }
      if (!stored && !secret) this.#warnUnsigned();
      // A carried position with no key to store it under stays with the client.
      const keyless = session.key === undefined && currentKey === undefined;
      const held = !stored || (keyless && request.carried !== undefined && !session.empty);
      const carry = held && secret !== undefined;
      // Only what this request knows (no store read just for the header: the budget).
      const tokenWanted = first && issueToken && !session.empty;
      const signed = tokenWanted || carry ? await this.tokens.issue(session, secret!, false).catch(() => undefined) : undefined;
      const token = tokenWanted ? signed : undefined;
      if (first) span?.setAttributes({ [ATTR.tokenOut]: token !== undefined, [ATTR.storeOutcome]: session.storeOutcome });
      return { token, unstored: carry ? signed : undefined, stored: !held };
    };
    return {
      run: (fn) => runInScope(scope, () => this.telemetry.within(span, fn)),
      finish: (currentKey) => {
        const isFirst = first;
        first = false;
        const run = chain.then(() => finishOnce(currentKey, isFirst));
        chain = run;
        return run;
      },
      get storeOutcome() {
        return session.storeOutcome;
      },
      close: () => span?.end(),
    };
  }
}

/**
 * Runs `fn` at `level` in the current request's scope (same session). False, without running
 * it, outside a request scope.
 */
export function runAtLevel(level: Consistency, fn: () => void): boolean {
  const scope: Scope | undefined = activeScope();
  if (!scope) return false;
  runInScope(withLevel(scope, level), fn);
  return true;
}
