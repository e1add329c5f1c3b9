import type { IncomingMessage, ServerResponse } from 'node:http';
import { isConsistency, levelName, type Consistency } from '../../lib/consistency.js';
import { ATTR, sessionHash } from '../../lib/telemetry.js';
import { ErrorCodes, ReplicaRouterError } from '../../lib/errors.js';
import { requestScopesOf } from '../../lib/internal.js';
import { BAGGAGE_KEY, otelApi } from '../../lib/otel.js';
import { TOKEN_HEADER } from '../../lib/propagation.js';
import type { Router } from '../../lib/router.js';
import { checkKnownKeys } from '../../lib/suggest.js';
import { runAtLevel, type RequestScope } from '../../lib/request-scope.js';
import { carriedPosition, positionCookie, resolveIdentity, type CookieOptions, type IdentityRules } from './identity.js';
import { gateResponse } from './response-gate.js';
import { parseClientLevel, stronger } from './levels.js';

export { tokenHeaders, withTokenBaggage, TOKEN_HEADER } from '../../lib/propagation.js';
export type { CookieOptions } from './identity.js';

/** The parts of an Express request the middleware reads (Express's own `Request` fits). */
export interface ConsistencyRequest extends IncomingMessage {
  secure?: boolean;
  query?: unknown;
  session?: { id?: unknown };
  sessionID?: unknown;
  user?: unknown;
}

type Next = (err?: unknown) => void;
type Handler = (req: ConsistencyRequest, res: ServerResponse, next: Next) => void;

/**
 * Options for {@link consistency}.
 */
export interface ConsistencyOptions {
  /**
   * The session key for a request (a user id, an API key id), or undefined to fall back to
   * express-session's id, then the middleware's own cookie. Called when the session is first
   * needed (the request's first statement, else when the response goes out), so after per-route
   * auth middleware set `req.auth` / `req.user`; possibly more than once per request. A throw
   * sends that request's reads to the primary and stores nothing (logged).
   */
  session?: (req: ConsistencyRequest) => string | number | undefined | null;
  /** The middleware's own session cookie, used when nothing else identifies the session. `false`: never issue one. */
  cookie?: CookieOptions | false;
  /** Header carrying the consistency token in and out. Default `x-consistency-token`. `false`: no token header. */
  tokenHeader?: string | false;
  /** Header a client may use to ask for a stronger level for one request. Default `x-consistency`. `false`: ignored. */
  levelHeader?: string | false;
  /** Query parameter a client may use likewise (`?consistency=primary`). Default `consistency`. `false`: ignored. */
  levelQuery?: string | false;
  /** Also accept a token from OpenTelemetry baggage (`pgrr.token`) when `@opentelemetry/api` is installed. Default true. */
  baggage?: boolean;
  /**
   * The cookie that carries a session's position to the client when the store could not take it
   * (a timeout, an open circuit): signed with the router's `tokenSecret`, merged on the next
   * request (on any instance) like a token, cleared once the position is stored. Same attributes
   * as `cookie`. Default `{ name: 'pgrr_pos', maxAgeSeconds: 600 }`. `false`: never set one (only a
   * client that echoes the token header then keeps such a write). Needs `tokenSecret`.
   */
  positionCookie?: { name?: string; maxAgeSeconds?: number } | false;
}

const KNOWN = ['session', 'cookie', 'tokenHeader', 'levelHeader', 'levelQuery', 'baggage', 'positionCookie'];
const REQUESTED = Symbol('pg-replica-router.requested-level');
const SCOPE = Symbol('pg-replica-router.request-scope');

function invalid(message: string): ReplicaRouterError {
  return new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `consistency(): ${message}`);
}

function headerName(name: string, value: unknown, fallback: string): string | false {
  if (value === undefined) return fallback;
  if (value === false) return false;
  if (typeof value !== 'string' || !/^[A-Za-z0-9-]+$/.test(value)) throw invalid(`${name} must be a header name or false`);
  return value.toLowerCase();
}

/**
 * Express middleware that runs every request as one session: reads anywhere in the handler —
 * raw pg, Kysely, Drizzle, through `router.pool` — see the session's own writes and never go back
 * in time. The session's position is loaded on the request's first routable read and stored
 * before any byte of the response is sent; the response carries the session's token.
 *
 * Session identity, first that applies, resolved when first needed (after the route's auth): the
 * `session` option; express-session's id; the middleware's own cookie; a token-only client (a
 * token header and no cookie); a new cookie. A key the store does not hold is owed the primary's
 * position unless the request is a first visit (a new cookie for a GET/HEAD/OPTIONS without
 * `Authorization`). A login that returns its credential in the body calls {@link handOver}.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { consistency, requireConsistency } from 'pg-replica-router/express';
 *
 * const app = express();
 * app.use(consistency(router, { session: (req) => req.user?.id }));
 * app.get('/balance', requireConsistency('primary'), async (req, res) => {
 *   res.json((await router.query('select balance from accounts where id = $1', [req.user.id])).rows[0]);
 * });
 * ```
 */
export function consistency(router: Router, options: ConsistencyOptions = {}): Handler {
  const requests = requestScopesOf(router);
  if (!requests) throw invalid('the first argument must be a router made by createRouter()');
  if (options === null || typeof options !== 'object') throw invalid('options must be an object');
  checkKnownKeys(options, KNOWN, invalid);
  if (options.session !== undefined && typeof options.session !== 'function') throw invalid('session must be a function (req) => key');
  const tokenHeader = headerName('tokenHeader', options.tokenHeader, TOKEN_HEADER);
  const levelHeader = headerName('levelHeader', options.levelHeader, 'x-consistency');
  const levelQuery = options.levelQuery === undefined ? 'consistency' : options.levelQuery;
  if (levelQuery !== false && typeof levelQuery !== 'string') throw invalid('levelQuery must be a parameter name or false');
  const cookie =
    options.cookie === false
      ? false
      : { name: 'pgrr_sid', maxAgeSeconds: 30 * 24 * 3600, secure: 'auto' as const, path: '/', ...options.cookie };
  if (cookie && !/^[A-Za-z0-9_-]+$/.test(cookie.name)) throw invalid('cookie.name must be letters, digits, _ or -');
  const useBaggage = options.baggage ?? true;
  const carrier = positionCookieOptions(options.positionCookie, cookie);

  return function consistencyMiddleware(req, res, next) {
    try {
      const incoming = incomingToken(req, tokenHeader, useBaggage);
      const carried = carrier ? carriedPosition(req, carrier.name) : undefined;
      const hasToken = incoming !== undefined && requests.verifies(incoming);
      const rules: IdentityRules<ConsistencyRequest> = { session: options.session, cookie, hasToken };
      const setHeader = res.setHeader.bind(res); // Node's own: works while the gate holds the response
      const requested = clientLevel(req, levelHeader, levelQuery);
      (req as unknown as Record<symbol, unknown>)[REQUESTED] = requested;
      const level = stronger(requests.defaultLevel, requested);
      const request = requests.open({
        // Asked on the request's first statement (or at its end): after the route's own auth.
        identity: () => {
          const { key, source, fresh, cookieless } = resolveIdentity(req, res, rules, setHeader);
          if (cookieless) requests.noteCookieless(options.session !== undefined);
          return {
            key,
            fresh,
            spanAttributes: { [ATTR.sessionSource]: source, ...(key === undefined ? {} : { [ATTR.sessionHash]: sessionHash(key) }) },
          };
        },
        onIdentityError: (err) => requests.noteIdentityError(err),
        token: incoming,
        consistency: level === requests.defaultLevel ? undefined : level,
        issueToken: tokenHeader !== false,
        carried,
        spanAttributes: { [ATTR.tokenIn]: incoming !== undefined, [ATTR.consistency]: levelName(level) },
      });
      (req as unknown as Record<symbol, unknown>)[SCOPE] = request;
      const rekey = () => resolveIdentity(req, res, rules).key;
      gateResponse(
        res,
        async (setHeader) => {
          const { token, unstored, stored } = await request.finish(rekey);
          if (token && tokenHeader) setHeader(tokenHeader, token);
          // Not stored: the client carries the position to its next request; stored: cleared.
          if (carrier && (unstored !== undefined || (stored && carried !== undefined))) {
            setHeader('Set-Cookie', positionCookie(req, res, carrier, unstored));
          }
        },
        async () => {
          await request.finish(rekey); // what was written while the body streamed
        },
      );
      res.once('close', () => request.close());
      request.run(() => next());
    } catch (err) {
      next(err);
    }
  };
}

/**
 * Hands the request's session over to a new identity: for a login or registration whose
 * credential (a JWT, an API key) goes out in the response body, so the client's next request is
 * keyed differently. The session's position — this request's writes and reads — is stored under
 * `key` as well when the response goes out, so the next request, keyed on the new credential,
 * reads at least what this one wrote. Pass what the `session` option returns for requests
 * bearing that credential. (Without it that key is new to the store and owed the primary's
 * position: still safe, but a returning user's older stored position would not know this
 * request's writes.) Express sessions and `req.user` set during the request need no call: the
 * key at the end of the request is compared with the one loaded.
 *
 * @example
 * ```ts
 * app.use(consistency(router, { session: (req) => req.auth?.sub }));
 * app.post('/api/users/login', async (req, res) => {
 *   const user = await login(req.body.user);           // reads (and writes) through the router
 *   handOver(req, user.id);                             // the next request is keyed on user.id
 *   res.json({ user: { ...user, token: signJwt({ sub: user.id }) } });
 * });
 * ```
 */
export function handOver(req: IncomingMessage, key: string | number): void {
  const request = (req as unknown as Record<symbol, RequestScope | undefined>)[SCOPE];
  if (!request) throw new ReplicaRouterError(ErrorCodes.MIDDLEWARE_ORDER, 'handOver() needs app.use(consistency(router)) before the route');
  if ((typeof key !== 'string' && typeof key !== 'number') || key === '')
    throw invalid('handOver(req, key): key must be a non-empty string or a number');
  request.handOver(String(key));
}

/**
 * Per-route consistency level, after `consistency()`. A client may still ask for a stronger level
 * for one request (header or query), never a weaker one.
 *
 * @example
 * ```ts
 * app.get('/balance', requireConsistency('primary'), handler);
 * app.get('/leaderboard', requireConsistency({ maxStalenessMs: 5000 }), handler);
 * ```
 */
export function requireConsistency(level: Consistency): Handler {
  if (!isConsistency(level))
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `requireConsistency: not a consistency level: ${JSON.stringify(level)}`);
  return function requireConsistencyMiddleware(req, _res, next) {
    const effective = stronger(level, (req as unknown as Record<symbol, Consistency | undefined>)[REQUESTED]);
    if (!runAtLevel(effective, () => next())) {
      next(new ReplicaRouterError(ErrorCodes.MIDDLEWARE_ORDER, 'requireConsistency() needs app.use(consistency(router)) before it'));
    }
  };
}

function positionCookieOptions(
  option: ConsistencyOptions['positionCookie'],
  cookie: Required<CookieOptions> | false,
): Required<CookieOptions> | false {
  if (option === false) return false;
  if (option !== undefined && (option === null || typeof option !== 'object')) throw invalid('positionCookie must be an object or false');
  checkKnownKeys(option ?? {}, ['name', 'maxAgeSeconds'], invalid, 'positionCookie.');
  const name = option?.name ?? 'pgrr_pos';
  const maxAgeSeconds = option?.maxAgeSeconds ?? 600;
  if (typeof name !== 'string' || !/^[A-Za-z0-9_-]+$/.test(name)) throw invalid('positionCookie.name must be letters, digits, _ or -');
  if (cookie && name === cookie.name) throw invalid('positionCookie.name must differ from cookie.name');
  if (!Number.isInteger(maxAgeSeconds) || maxAgeSeconds < 1) throw invalid('positionCookie.maxAgeSeconds must be a positive integer');
  return { name, maxAgeSeconds, secure: cookie ? cookie.secure : 'auto', path: cookie ? cookie.path : '/' };
}

function incomingToken(req: ConsistencyRequest, header: string | false, baggage: boolean): string | undefined {
  if (header) {
    const value = req.headers[header];
    const token = Array.isArray(value) ? value[0] : value;
    if (token) return token;
  }
  if (!baggage) return undefined;
  const api = otelApi();
  if (!api) return undefined;
  const fromContext = api.propagation.getBaggage(api.context.active())?.getEntry(BAGGAGE_KEY)?.value;
  if (fromContext) return fromContext;
  return api.propagation.getBaggage(api.propagation.extract(api.ROOT_CONTEXT, req.headers))?.getEntry(BAGGAGE_KEY)?.value;
}

function clientLevel(req: ConsistencyRequest, header: string | false, query: string | false): Consistency | undefined {
  let requested: Consistency | undefined;
  if (header) requested = parseClientLevel(req.headers[header]);
  if (query && req.query && typeof req.query === 'object')
    requested = stronger(requested ?? 'eventual', parseClientLevel((req.query as Record<string, unknown>)[query]));
  if (requested === 'eventual') return undefined;
  return requested;
}
