import type { FastifyPluginCallback, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { isConsistency, type Consistency } from '../../lib/consistency.js';
import { ErrorCodes, ReplicaRouterError } from '../../lib/errors.js';
import { requestScopesOf } from '../../lib/internal.js';
import type { Router } from '../../lib/router.js';
import type { RequestLike } from '../http/identity.js';
import { httpSettings, keepOpened, openedFor, openHttpRequest, type HttpConsistencyOptions } from '../http/request.js';

export { tokenHeaders, withTokenBaggage, TOKEN_HEADER } from '../../lib/propagation.js';
export type { CookieOptions } from '../http/identity.js';

/**
 * Options of the {@link consistency} plugin: `router`, and the options every HTTP adapter takes
 * (`session`, `cookie`, `tokenHeader`, `clientLevels`, `levelHeader`, `levelQuery`, `baggage`, `positionCookie`;
 * see docs/fastify.md). `session` receives Fastify's request.
 */
export interface FastifyConsistencyOptions extends HttpConsistencyOptions<FastifyRequest> {
  router: Router;
}

/** What a route may put in its `config`: `{ config: { consistency: 'primary' } }`. */
export interface ConsistencyRouteConfig {
  consistency?: Consistency;
}

function invalid(message: string): ReplicaRouterError {
  return new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `pg-replica-router/fastify: ${message}`);
}

/** Fastify's session plugins, as far as identity goes: `@fastify/session` has `sessionId`. */
function frameworkSessionId(request: FastifyRequest): unknown {
  const session = (request as FastifyRequest & { session?: { sessionId?: unknown } }).session;
  return session?.sessionId;
}

/**
 * A Fastify plugin (`fastify-plugin`: it applies to the whole app) that runs every request as one
 * session, like the Express middleware: reads in handlers — raw pg, Kysely, Drizzle, through
 * `router.pool` — see the session's own writes and never go back in time. The position is loaded
 * on the request's first routable read and stored before any byte of the reply is sent
 * (`reply.send()`, streams, and `reply.hijack()` with writes to `reply.raw` alike); the reply
 * carries the session's token. Identity, first that applies: the `session` option,
 * `@fastify/session`'s id, the plugin's own cookie, a token-only client, a new cookie. A route
 * sets its level with `config: { consistency }`; a client may ask for a stronger one (header or
 * query), never a weaker one.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import type { Router } from 'pg-replica-router';
 * import { consistency } from 'pg-replica-router/fastify';
 *
 * declare const router: Router;
 * const app = Fastify();
 * await app.register(consistency, { router, session: (req) => req.headers['x-user-id']?.toString() });
 * app.get('/balance', { config: { consistency: 'primary' } }, async () => (await router.query('select 1 as one')).rows[0]);
 * ```
 */
export const consistency: FastifyPluginCallback<FastifyConsistencyOptions> = fp<FastifyConsistencyOptions>(
  (fastify, options, done) => {
    const { router, ...rest } = options;
    const requests = requestScopesOf(router);
    if (!requests) return done(invalid('options.router must be a router made by createRouter()'));
    let settings: ReturnType<typeof httpSettings<FastifyRequest>>;
    try {
      settings = httpSettings(rest, invalid, ['router']);
    } catch (err) {
      return done(err as Error);
    }
    fastify.addHook('onRequest', (request, reply, next) => {
      const routeLevel = (request.routeOptions.config as ConsistencyRouteConfig | undefined)?.consistency;
      if (routeLevel !== undefined && !isConsistency(routeLevel)) {
        return next(
          invalid(`route ${request.routeOptions.url ?? ''}: config.consistency is not a consistency level: ${JSON.stringify(routeLevel)}`),
        );
      }
      // Identity reads the raw request's headers, plus TLS and the session plugin's id.
      const identity = Object.create(request.raw, {
        secure: { value: request.protocol === 'https' },
        sessionID: { get: () => frameworkSessionId(request) },
      }) as RequestLike;
      const { request: scope, requested } = openHttpRequest(requests, settings, {
        req: request,
        identity,
        res: reply.raw,
        query: request.query,
        routeLevel,
      });
      keepOpened(request.raw, { scope, requested });
      scope.run(() => next()); // the hooks that follow run inside the session
    });
    // Entered again before the handler: a body parser's stream events run outside the async
    // context the request began in, so what follows them would run outside the session.
    fastify.addHook('preHandler', (request, _reply, next) => {
      const opened = openedFor(request.raw);
      if (!opened) return next();
      opened.scope.run(() => next());
    });
    done();
  },
  { fastify: '>=4', name: 'pg-replica-router' },
);

/**
 * Hands the request's session over to a new identity (a login whose credential goes out in the
 * body): its position is stored under `key` too when the reply goes out. As `handOver` of
 * `pg-replica-router/express`.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import type { Router } from 'pg-replica-router';
 * import { consistency, handOver } from 'pg-replica-router/fastify';
 *
 * declare const router: Router;
 * declare function login(credentials: unknown): Promise<{ id: string }>; // reads (and writes) through the router
 * declare function signJwt(claims: { sub: string }): string;
 *
 * const app = Fastify();
 * await app.register(consistency, { router });
 * app.post('/login', async (request) => {
 *   const user = await login(request.body);
 *   handOver(request, user.id);
 *   return { token: signJwt({ sub: user.id }) };
 * });
 * ```
 */
export function handOver(request: FastifyRequest, key: string | number): void {
  const scope = openedFor(request.raw)?.scope;
  if (!scope) throw new ReplicaRouterError(ErrorCodes.MIDDLEWARE_ORDER, 'handOver() needs app.register(consistency, { router }) first');
  if ((typeof key !== 'string' && typeof key !== 'number') || key === '')
    throw invalid('handOver(request, key): key must be a non-empty string or a number');
  scope.handOver(String(key));
}
