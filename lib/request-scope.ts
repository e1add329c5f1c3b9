import type { Consistency } from './consistency.js';
import type { Dispatch } from './dispatch.js';
import type { Attributes } from './otel.js';
import { encodePosition } from './position.js';
import { activeScope, makeScope, runInScope, withLevel, type Scope } from './scopes.js';
import { Session, type StoreOutcome } from './session.js';
import type { SessionStore } from './session-store.js';
import type { SessionTokens } from './session-tokens.js';
import { ATTR, type Telemetry } from './telemetry.js';

/** Who a request's session is, once it is asked (see {@link RequestInfo.identity}). */
export interface SessionIdentity {
  /** The session key (a user, a cookie); undefined for a token-only client (kept in memory). */
  readonly key: string | undefined;
  /**
   * The session is brand new (its identity was issued by this request): it owes nothing yet.
   * False for a key: a key the store does not hold is owed the primary's position at its load;
   * false (not undefined) without a key: owed the primary's position now (nothing identifies it).
   */
  readonly fresh?: boolean;
  /** Attributes for the request span (where the identity came from, its hash). */
  readonly spanAttributes?: Attributes;
}

/** What a framework adapter knows about an incoming request. */
export interface RequestInfo {
  /**
   * The session's identity, asked when it is first needed — the request's first statement (or
   * token, or level change), else when the request finishes — so after the route's own
   * middleware (authentication) ran. It is asked once; a throw makes the request's reads go to
   * the primary and stores nothing (see `onIdentityError`).
   */
  readonly identity: () => SessionIdentity;
  /** Told when `identity` threw. */
  readonly onIdentityError?: (err: unknown) => void;
  /** An incoming consistency token, if any (verified and merged here; a bad one is ignored). */
  readonly token: unknown;
  /** The request's level when it differs from the router's default. */
  readonly consistency: Consistency | undefined;
  /** Attributes of the request span (`pgrr.request`). */
  readonly spanAttributes: Attributes;
  /** Whether the response can carry a token (else none is made). */
  readonly issueToken: boolean;
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
   * Stores the session's position (under `currentKey` and every handed-over key too, when the
   * identity changed during the request: a login) and, the first time, returns the token for the
   * response; and the position itself, signed, when it could not be stored. Call it before the
   * response's first byte and again before its last; it never rejects, and calls run one at a
   * time. Resolves the identity first if nothing needed it yet.
   */
  finish(currentKey?: () => string | undefined): Promise<FinishOutcome>;
  /**
   * The session continues as `key` after this request (a login or registration whose credential
   * goes out in the response body): its position is stored under `key` as well when it finishes.
   */
  handOver(key: string): void;
  /** The session's key, resolving the identity if nothing did yet. */
  readonly key: string | undefined;
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
    /** The router's start: a request's session (and the token it brought) is judged only after it. */
    readonly start: Pick<Dispatch, 'isStarted' | 'started'>,
  ) {}

  #warnedUnsigned = false;
  #warnedCookieless = false;

  /**
   * A request carries a credential (`Authorization`) but none of the session cookies and nothing
   * identifies its session: a client that keeps no cookies, new on every request. It is served
   * safely (owed the primary's position, as a key the store does not hold); counted
   * (`counters.cookielessClients`); warned once.
   */
  noteCookieless(sessionOption: boolean): void {
    this.sessions.counters.cookielessClients++;
    if (this.#warnedCookieless) return;
    this.#warnedCookieless = true;
    this.sessions.warn(
      'cookieless-client',
      (sessionOption
        ? 'the session option returned no key for a request with an Authorization header and no session cookie; '
        : 'a request with an Authorization header carries no session cookie; ') +
        'clients that keep no cookies look new on every request, so their reads go to the primary or to replicas ' +
        'that replayed its position: key sessions on the credential (consistency(router, { session: (req) => req.auth?.sub })) ' +
        'or have the client echo the X-Consistency-Token header',
    );
  }

  /** An adapter's option threw: `session` (that request read on the primary, stored nothing) or `clientLevels` (level refused). */
  noteIdentityError(err: unknown, option: 'session' | 'clientLevels' = 'session'): void {
    const outcome =
      option === 'session' ? 'that request reads on the primary and stores no position' : "that request's client level is refused";
    this.sessions.warn(`${option}-option-error`, `the ${option} option threw; ${outcome}`, { error: String(err) });
  }

  /** A client asked for a level (header or query): honoured when `clientLevels` allowed it, else refused. Counted. */
  noteClientLevel(honoured: boolean): void {
    this.sessions.counters.clientLevels[honoured ? 'honoured' : 'refused']++;
    this.telemetry.clientLevel(honoured);
  }

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
    const secret = this.tokens.secrets[0];
    const span = this.telemetry.startRequestSpan(request.spanAttributes);
    let resolved: Session | undefined;
    let resolving = false;
    // The identity is asked for when first needed (a statement, a token, the end of the
    // request): after the route's authentication ran, not when the middleware did.
    const session = (): Session => {
      if (resolved) return resolved;
      if (resolving) return onPrimary(); // a statement made by the identity function itself
      let identity: SessionIdentity;
      try {
        resolving = true;
        identity = request.identity();
      } catch (err) {
        request.onIdentityError?.(err);
        identity = { key: undefined };
        resolved = onPrimary(); // who this is is unknown: only the primary is safe
      } finally {
        resolving = false;
      }
      resolved ??= new Session(identity.key, identity.fresh ?? false);
      // Nothing identifies the session and it may not be new (a client that keeps no cookies):
      // owed what the primary had now, as a key the store does not hold.
      if (identity.key === undefined && identity.fresh === false) resolved.absorb({ lsn: 0n, node: 'primary' }, performance.now());
      if (identity.spanAttributes) span?.setAttributes(identity.spanAttributes);
      if (request.token !== undefined && secret) this.tokens.absorb(resolved, request.token);
      if (request.carried !== undefined && secret) this.tokens.absorb(resolved, request.carried);
      return resolved;
    };
    const scope = lazyScope(session, makeScope(PLACEHOLDER, request.consistency));
    const issueToken = request.issueToken && secret !== undefined;
    const handedOver = new Set<string>();
    /** What was last stored under each key other than the session's own (skips repeats). */
    const storedUnder = new Map<string, string>();
    let chain: Promise<unknown> = Promise.resolve();
    let first = true;
    const finishOnce = async (current: Session, currentKey: string | undefined, first: boolean): Promise<FinishOutcome> => {
      let stored = await this.sessions.persist(current).then(
        () => true,
        () => false,
      );
      // The identity changed during the request (login, session regeneration, a hand-over):
      // the new keys must carry what this request wrote and saw too.
      const others = new Set(handedOver);
      if (currentKey !== undefined) others.add(currentKey);
      if (current.key !== undefined) others.delete(current.key);
      for (const key of others) {
        if (storedUnder.get(key) === encodePosition(current.position()) && !current.writePending) continue;
        const ok = await this.sessions.persist(current, key).then(
          () => true,
          () => false,
        );
        if (ok) storedUnder.set(key, encodePosition(current.position()));
        stored &&= ok;
      }
      if (!stored && !secret) this.#warnUnsigned();
      // A carried position with no key to store it under stays with the client.
      const keyless = current.key === undefined && others.size === 0;
      const held = !stored || (keyless && request.carried !== undefined && !current.empty);
      const carry = held && secret !== undefined;
      // Only what this request knows (no store read just for the header: the budget).
      const tokenWanted = first && issueToken && !current.empty;
      const signed = tokenWanted || carry ? await this.tokens.issue(current, secret!, false).catch(() => undefined) : undefined;
      const token = tokenWanted ? signed : undefined;
      if (first) span?.setAttributes({ [ATTR.tokenOut]: token !== undefined, [ATTR.storeOutcome]: current.storeOutcome });
      return { token, unstored: carry ? signed : undefined, stored: !held };
    };
    return {
      run: (fn) => runInScope(scope, () => this.telemetry.within(span, fn)),
      finish: (currentKey) => {
        const isFirst = first;
        first = false;
        // A request that ends before the router has started (it ran no statement): its session is
        // resolved, with its token, once started.
        const current = this.start.isStarted ? session() : undefined;
        let key: string | undefined;
        try {
          key = currentKey?.();
        } catch (err) {
          request.onIdentityError?.(err);
        }
        const resolved = current ? chain : chain.then(() => this.start.started());
        const run = resolved.then(() => finishOnce(current ?? session(), key, isFirst));
        chain = run;
        return run;
      },
      handOver: (key) => {
        handedOver.add(key);
      },
      get key() {
        return session().key;
      },
      get storeOutcome() {
        return resolved?.storeOutcome ?? 'not-read';
      },
      close: () => span?.end(),
    };
  }
}

/** A session whose reads all go to the primary (its floor is unknown), stored nowhere. */
function onPrimary(): Session {
  const session = new Session(undefined);
  session.floorUnknown = true;
  return session;
}

/** Stands in for a lazy scope's session where {@link makeScope} wants one (never used). */
const PLACEHOLDER = new Session(undefined);
/** Scopes whose session is resolved on first use, and how. */
const lazySessions = new WeakMap<Scope, () => Session>();

/** `base`'s level, with its session resolved the first time a statement (or anything) asks. */
function lazyScope(session: () => Session, base: Scope): Scope {
  const scope: Scope = {
    get session() {
      return session();
    },
    consistency: base.consistency,
    forcePrimary: base.forcePrimary,
  };
  lazySessions.set(scope, session);
  return scope;
}

/**
 * Runs `fn` at `level` in the current request's scope (same session). False, without running
 * it, outside a request scope.
 */
export function runAtLevel(level: Consistency, fn: () => void): boolean {
  const scope: Scope | undefined = activeScope();
  if (!scope) return false;
  const lazy = lazySessions.get(scope);
  // A per-route level must not resolve the identity early (it may run before the route's auth).
  runInScope(lazy ? lazyScope(lazy, makeScope(PLACEHOLDER, level, scope.forcePrimary)) : withLevel(scope, level), fn);
  return true;
}
