import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request } from 'express';
import { isConsistency, type Consistency } from '../../lib/consistency.js';
import { ErrorCodes, ReplicaRouterError } from '../../lib/errors.js';
import { requestScopesOf } from '../../lib/internal.js';
import type { Router } from '../../lib/router.js';
import { runAtLevel } from '../../lib/request-scope.js';
import { stronger } from '../http/levels.js';
import { httpSettings, keepOpened, openedFor, openHttpRequest, type HttpConsistencyOptions } from '../http/request.js';

export { tokenHeaders, withTokenBaggage, TOKEN_HEADER } from '../../lib/propagation.js';
export type { CookieOptions } from '../http/identity.js';

type Next = (err?: unknown) => void;
type Handler = (req: Request, res: ServerResponse, next: Next) => void;

/**
 * Options for {@link consistency} (the same for every HTTP adapter): `session` (the key for a
 * request, e.g. a user id; else express-session's id, else the middleware's own cookie), `cookie`,
 * `tokenHeader`, `clientLevels`, `levelHeader`, `levelQuery`, `baggage`, `positionCookie`.
 * `session` and `clientLevels` receive Express's `Request`, with what the app declares on it:
 * passport's `req.user` (the app's `Express.User`); for a type that is not global, such as
 * express-jwt's `Request` with `req.auth`, annotate the parameter: `(req: JwtRequest) => …`.
 */
export type ConsistencyOptions = HttpConsistencyOptions<Request>;

function invalid(message: string): ReplicaRouterError {
  return new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `consistency(): ${message}`);
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
 * import type { Router } from 'pg-replica-router';
 * import { consistency, requireConsistency } from 'pg-replica-router/express';
 *
 * declare global {
 *   // With passport: the app's user type (and `Request.user`, which @types/passport declares).
 *   namespace Express {
 *     interface User {
 *       id: string;
 *     }
 *     interface Request {
 *       user?: User | undefined;
 *     }
 *   }
 * }
 * declare const router: Router;
 * declare const authenticate: express.RequestHandler; // e.g. passport.authenticate('jwt', { session: false })
 *
 * const app = express();
 * app.use(consistency(router, { session: (req) => req.user?.id }));
 * app.get('/balance', authenticate, requireConsistency('primary'), async (req, res) => {
 *   res.json((await router.query('select balance from accounts where owner = $1', [req.user!.id])).rows[0]);
 * });
 * ```
 */
export function consistency(router: Router, options: ConsistencyOptions = {}): Handler {
  const requests = requestScopesOf(router);
  if (!requests) throw invalid('the first argument must be a router made by createRouter()');
  const settings = httpSettings(options, invalid);
  return function consistencyMiddleware(req, res, next) {
    try {
      const { request, requested } = openHttpRequest(requests, settings, { req, identity: req, res, query: req.query });
      keepOpened(req, { scope: request, requested });
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
 * import express from 'express';
 * import type { Router } from 'pg-replica-router';
 * import { consistency, handOver } from 'pg-replica-router/express';
 *
 * type JwtRequest = express.Request & { auth?: { sub: string } }; // as express-jwt types it
 * declare const router: Router;
 * declare function login(credentials: unknown): Promise<{ id: string }>; // reads (and writes) through the router
 * declare function signJwt(claims: { sub: string }): string;
 *
 * const app = express();
 * app.use(express.json());
 * app.use(consistency(router, { session: (req: JwtRequest) => req.auth?.sub }));
 * app.post('/api/users/login', async (req, res) => {
 *   const user = await login(req.body.user);
 *   handOver(req, user.id); // the next request is keyed on user.id
 *   res.json({ user: { ...user, token: signJwt({ sub: user.id }) } });
 * });
 * ```
 */
export function handOver(req: IncomingMessage, key: string | number): void {
  const request = openedFor(req)?.scope;
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
 * import express from 'express';
 * import { requireConsistency } from 'pg-replica-router/express';
 *
 * declare const app: express.Express; // with app.use(consistency(router))
 * declare const handler: express.RequestHandler;
 *
 * app.get('/balance', requireConsistency('primary'), handler);
 * app.get('/leaderboard', requireConsistency({ maxStalenessMs: 5000 }), handler);
 * ```
 */
export function requireConsistency(level: Consistency): Handler {
  if (!isConsistency(level))
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `requireConsistency: not a consistency level: ${JSON.stringify(level)}`);
  return function requireConsistencyMiddleware(req, _res, next) {
    const effective = stronger(level, openedFor(req)?.requested);
    if (!runAtLevel(effective, () => next())) {
      next(new ReplicaRouterError(ErrorCodes.MIDDLEWARE_ORDER, 'requireConsistency() needs app.use(consistency(router)) before it'));
    }
  };
}
