// What the HTTP adapters (Express, Fastify) share: their options, and how one request becomes a
// session scope — the incoming token, the client's level, the identity rules, the response held
// until the position is stored. Each adapter only maps its framework's request and reply onto it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { levelName, type Consistency } from '../../lib/consistency.js';
import { ATTR, sessionHash } from '../../lib/telemetry.js';
import type { ReplicaRouterError } from '../../lib/errors.js';
import { BAGGAGE_KEY, otelApi } from '../../lib/otel.js';
import { TOKEN_HEADER } from '../../lib/propagation.js';
import { checkKnownKeys } from '../../lib/suggest.js';
import type { RequestScope, RequestScopes } from '../../lib/request-scope.js';
import { carriedPosition, positionCookie, resolveIdentity, type CookieOptions, type IdentityRules, type RequestLike } from './identity.js';
import { gateResponse } from './response-gate.js';
import { parseClientLevel, stronger } from './levels.js';

/** The options every HTTP adapter takes; `Req` is its framework's request. */
export interface HttpConsistencyOptions<Req> {
  /**
   * The session key for a request (a user id, an API key id), or undefined to fall back to the
   * framework's session id, then the adapter's own cookie. Called when the session is first
   * needed (the request's first statement, else when the response goes out), so after per-route
   * auth set the user; possibly more than once per request. A throw sends that request's reads
   * to the primary and stores nothing (logged).
   */
  session?: (req: Req) => string | number | undefined | null;
  /** The adapter's own session cookie, used when nothing else identifies the session. `false`: never issue one. */
  cookie?: CookieOptions | false;
  /** Header carrying the consistency token in and out. Default `x-consistency-token`. `false`: no token header. */
  tokenHeader?: string | false;
  /**
   * Which requests may ask for a stronger level than the route's (`levelHeader` / `levelQuery`).
   * Default `false`: none — any client could otherwise send `X-Consistency: primary` on every
   * request and push its reads onto the primary, the scarcest node. `true`: every request (e.g. a
   * service reached only by trusted callers); a function: the requests it returns true for (e.g.
   * internal callers). Requests asking are counted either way (`counters.clientLevels`,
   * metric `pgrr.client_levels`).
   */
  clientLevels?: boolean | ((req: Req) => boolean);
  /** Header a client allowed by `clientLevels` may use to ask for a stronger level for one request. Default `x-consistency`. `false`: ignored. */
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

/** The option names of {@link HttpConsistencyOptions}. */
export const HTTP_OPTION_KEYS = [
  'session',
  'cookie',
  'tokenHeader',
  'clientLevels',
  'levelHeader',
  'levelQuery',
  'baggage',
  'positionCookie',
];

/** {@link HttpConsistencyOptions} checked once, with defaults. */
export interface HttpSettings<Req> {
  readonly session: ((req: Req) => string | number | undefined | null) | undefined;
  readonly cookie: Required<CookieOptions> | false;
  readonly tokenHeader: string | false;
  readonly clientLevels: boolean | ((req: Req) => boolean);
  readonly levelHeader: string | false;
  readonly levelQuery: string | false;
  readonly baggage: boolean;
  readonly carrier: Required<CookieOptions> | false;
}

/** Checks an adapter's options (a mistake throws `ERR_PGRR_INVALID_OPTION` through `invalid`). */
export function httpSettings<Req>(
  options: HttpConsistencyOptions<Req>,
  invalid: (message: string) => ReplicaRouterError,
  extraKeys: readonly string[] = [],
): HttpSettings<Req> {
  if (options === null || typeof options !== 'object') throw invalid('options must be an object');
  checkKnownKeys(options, [...HTTP_OPTION_KEYS, ...extraKeys], invalid);
  if (options.session !== undefined && typeof options.session !== 'function') throw invalid('session must be a function (req) => key');
  const clientLevels = options.clientLevels ?? false;
  if (typeof clientLevels !== 'boolean' && typeof clientLevels !== 'function')
    throw invalid('clientLevels must be true, false, or a function (req) => boolean');
  const levelQuery = options.levelQuery === undefined ? 'consistency' : options.levelQuery;
  if (levelQuery !== false && typeof levelQuery !== 'string') throw invalid('levelQuery must be a parameter name or false');
  const cookie =
    options.cookie === false
      ? false
      : { name: 'pgrr_sid', maxAgeSeconds: 30 * 24 * 3600, secure: 'auto' as const, path: '/', ...options.cookie };
  if (cookie && !/^[A-Za-z0-9_-]+$/.test(cookie.name)) throw invalid('cookie.name must be letters, digits, _ or -');
  return {
    session: options.session,
    cookie,
    tokenHeader: headerName('tokenHeader', options.tokenHeader, TOKEN_HEADER, invalid),
    clientLevels,
    levelHeader: headerName('levelHeader', options.levelHeader, 'x-consistency', invalid),
    levelQuery,
    baggage: options.baggage ?? true,
    carrier: positionCookieOptions(options.positionCookie, cookie, invalid),
  };
}

/** One HTTP request as an adapter sees it. */
export interface HttpExchange<Req> {
  /** The framework's request, given to the `session` option. */
  readonly req: Req;
  /** What identity is read from: headers, `secure`, and the framework session's id as `sessionID`. */
  readonly identity: RequestLike;
  readonly res: ServerResponse;
  /** The parsed query string, if the framework has one. */
  readonly query: unknown;
  /** A level the route asks for (per-route configuration); the client may still ask for a stronger one. */
  readonly routeLevel?: Consistency | undefined;
}

/**
 * Opens the request's session scope: its token (header, position cookie, baggage), its level
 * (the route's, or the router's default, made stronger by the client's request, never weaker),
 * its identity (resolved when first needed), and the response held until the position is
 * stored. The caller runs the handler inside `scope.run()`.
 */
export function openHttpRequest<Req>(
  requests: RequestScopes,
  settings: HttpSettings<Req>,
  exchange: HttpExchange<Req>,
): { request: RequestScope; requested: Consistency | undefined } {
  const { identity: req, res } = exchange;
  const incoming = incomingToken(req, settings.tokenHeader, settings.baggage);
  const carrier = settings.carrier;
  const carried = carrier ? carriedPosition(req, carrier.name) : undefined;
  const hasToken = incoming !== undefined && requests.verifies(incoming);
  const session = settings.session;
  const rules: IdentityRules<RequestLike> = {
    session: session && (() => session(exchange.req)),
    cookie: settings.cookie,
    hasToken,
  };
  const setHeader = res.setHeader.bind(res); // Node's own: works while the gate holds the response
  const requested = allowedClientLevel(requests, settings, exchange);
  const level = stronger(exchange.routeLevel ?? requests.defaultLevel, requested);
  const request = requests.open({
    // Asked on the request's first statement (or at its end): after the route's own auth.
    identity: () => {
      const { key, source, fresh, cookieless } = resolveIdentity(req, res, rules, setHeader);
      if (cookieless) requests.noteCookieless(session !== undefined);
      return {
        key,
        fresh,
        spanAttributes: { [ATTR.sessionSource]: source, ...(key === undefined ? {} : { [ATTR.sessionHash]: sessionHash(key) }) },
      };
    },
    onIdentityError: (err) => requests.noteIdentityError(err),
    token: incoming,
    consistency: level === requests.defaultLevel ? undefined : level,
    issueToken: settings.tokenHeader !== false,
    carried,
    spanAttributes: { [ATTR.tokenIn]: incoming !== undefined, [ATTR.consistency]: levelName(level) },
  });
  const rekey = () => resolveIdentity(req, res, rules).key;
  gateResponse(
    res,
    async (set) => {
      const { token, unstored, stored } = await request.finish(rekey);
      if (token && settings.tokenHeader) set(settings.tokenHeader, token);
      // Not stored: the client carries the position to its next request; stored: cleared.
      if (carrier && (unstored !== undefined || (stored && carried !== undefined))) {
        set('Set-Cookie', positionCookie(req, res, carrier, unstored));
      }
    },
    async () => {
      await request.finish(rekey); // what was written while the body streamed
    },
  );
  res.once('close', () => request.close());
  return { request, requested };
}

/**
 * The level the client asks for, if it asks for one and `clientLevels` lets it; counted either
 * way. A predicate that throws refuses (logged by the router's logger).
 */
function allowedClientLevel<Req>(
  requests: RequestScopes,
  settings: HttpSettings<Req>,
  exchange: HttpExchange<Req>,
): Consistency | undefined {
  const requested = clientLevel(exchange.identity, exchange.query, settings.levelHeader, settings.levelQuery);
  if (requested === undefined) return undefined;
  let allowed = settings.clientLevels === true;
  if (typeof settings.clientLevels === 'function') {
    try {
      allowed = settings.clientLevels(exchange.req) === true;
    } catch (err) {
      requests.noteIdentityError(err, 'clientLevels');
    }
  }
  requests.noteClientLevel(allowed);
  return allowed ? requested : undefined;
}

/** The level a client asks for (header, then query), undefined when it asks for nothing stronger than eventual. */
export function clientLevel(req: IncomingMessage, query: unknown, header: string | false, param: string | false): Consistency | undefined {
  let requested: Consistency | undefined;
  if (header) requested = parseClientLevel(req.headers[header]);
  if (param && query && typeof query === 'object')
    requested = stronger(requested ?? 'eventual', parseClientLevel((query as Record<string, unknown>)[param]));
  if (requested === 'eventual') return undefined;
  return requested;
}

function headerName(name: string, value: unknown, fallback: string, invalid: (message: string) => ReplicaRouterError): string | false {
  if (value === undefined) return fallback;
  if (value === false) return false;
  if (typeof value !== 'string' || !/^[A-Za-z0-9-]+$/.test(value)) throw invalid(`${name} must be a header name or false`);
  return value.toLowerCase();
}

function positionCookieOptions(
  option: HttpConsistencyOptions<unknown>['positionCookie'],
  cookie: Required<CookieOptions> | false,
  invalid: (message: string) => ReplicaRouterError,
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

function incomingToken(req: IncomingMessage, header: string | false, baggage: boolean): string | undefined {
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

const OPENED = Symbol('pg-replica-router.request-scope');

/** What an adapter keeps on a request it opened: its scope, and the level its client asked for. */
export interface OpenedRequest {
  readonly scope: RequestScope;
  readonly requested: Consistency | undefined;
}

/** Keeps what {@link openHttpRequest} opened on `req` (the raw request), for route levels and handOver. */
export function keepOpened(req: object, opened: OpenedRequest): void {
  (req as Record<symbol, OpenedRequest>)[OPENED] = opened;
}

/** What was opened for `req`, if an adapter ran before. */
export function openedFor(req: object): OpenedRequest | undefined {
  return (req as Record<symbol, OpenedRequest | undefined>)[OPENED];
}
