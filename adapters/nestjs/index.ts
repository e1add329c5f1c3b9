import {
  Inject,
  Injectable,
  Module,
  RequestMethod,
  SetMetadata,
  type CallHandler,
  type DynamicModule,
  type ExecutionContext,
  type MiddlewareConsumer,
  type NestInterceptor,
  type NestModule,
} from '@nestjs/common';
import { APP_INTERCEPTOR, Reflector } from '@nestjs/core';
import type { IncomingMessage } from 'node:http';
import { Observable, type Subscription } from 'rxjs';
import { isConsistency, type Consistency } from '../../lib/consistency.js';
import { ErrorCodes, ReplicaRouterError } from '../../lib/errors.js';
import { runAtLevel } from '../../lib/request-scope.js';
import type { Router } from '../../lib/router.js';
import { consistency } from '../express/index.js';
import { stronger } from '../http/levels.js';
import { openedFor, type HttpConsistencyOptions } from '../http/request.js';

/**
 * Options of {@link ConsistencyModule.forRoot}: the router, and the options every HTTP adapter
 * takes. `session` and `clientLevels` receive the raw request, node's `IncomingMessage` (on Express
 * also Express's request; on Fastify not Fastify's).
 */
export interface ConsistencyModuleOptions extends HttpConsistencyOptions<IncomingMessage> {
  router: Router;
}

const LEVEL = 'pg-replica-router:consistency';
const OPTIONS = Symbol('pg-replica-router:module-options');

/**
 * The level of a route (or of every route of a controller), as `requireConsistency()` is for
 * Express; a client may still ask for a stronger one (header or query), never a weaker one.
 *
 * @example
 * ```ts
 * import { Controller, Get, Param } from '@nestjs/common';
 * import type { Router } from 'pg-replica-router';
 * import { RequireConsistency } from 'pg-replica-router/nestjs';
 *
 * declare const router: Router;
 *
 * @Controller('accounts')
 * export class AccountsController {
 *   @Get(':id/balance')
 *   @RequireConsistency('primary')
 *   balance(@Param('id') id: string) {
 *     return router.query('select balance from accounts where id = $1', [id]).then((r) => r.rows[0]);
 *   }
 * }
 * ```
 */
export function RequireConsistency(level: Consistency): MethodDecorator & ClassDecorator {
  if (!isConsistency(level))
    throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `RequireConsistency: not a consistency level: ${JSON.stringify(level)}`);
  return SetMetadata(LEVEL, level);
}

/**
 * Runs each HTTP handler inside its request's session (opened by the module's middleware), at the
 * route's level: the handler's reads and writes through the router are the session's. Needed
 * on Fastify, whose handlers run after the body is parsed, outside the middleware's async context.
 */
@Injectable()
class ConsistencyInterceptor implements NestInterceptor {
  constructor(@Inject(Reflector) private readonly reflector: Reflector) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const request = context.switchToHttp().getRequest<{ raw?: object }>();
    const opened = openedFor(request.raw ?? request); // Fastify: its request wraps the raw one
    if (!opened) return next.handle();
    const level = this.reflector.getAllAndOverride<Consistency | undefined>(LEVEL, [context.getHandler(), context.getClass()]);
    return new Observable((subscriber) => {
      let subscription: Subscription | undefined;
      const run = () => void (subscription = next.handle().subscribe(subscriber));
      opened.scope.run(() => (level === undefined ? run() : void runAtLevel(stronger(level, opened.requested), run)));
      return () => subscription?.unsubscribe();
    });
  }
}

/**
 * Every HTTP request of the application as one session, on both of Nest's HTTP platforms
 * (Express and Fastify): the middleware of `pg-replica-router/express` (Nest gives it the raw
 * request and response on either) opens the session and holds the response until its position
 * is stored; a global interceptor runs each handler inside it, at the route's
 * {@link RequireConsistency} level.
 *
 * @example
 * ```ts
 * import { Module } from '@nestjs/common';
 * import type { Router } from 'pg-replica-router';
 * import { ConsistencyModule } from 'pg-replica-router/nestjs';
 *
 * declare const router: Router;
 * declare class NotesController {}
 *
 * @Module({
 *   imports: [ConsistencyModule.forRoot({ router, session: (req) => req.headers['x-user-id']?.toString() })],
 *   controllers: [NotesController],
 * })
 * export class AppModule {}
 * ```
 */
@Module({})
export class ConsistencyModule implements NestModule {
  constructor(@Inject(OPTIONS) private readonly options: ConsistencyModuleOptions) {}

  static forRoot(options: ConsistencyModuleOptions): DynamicModule {
    return {
      module: ConsistencyModule,
      global: true,
      providers: [
        { provide: OPTIONS, useValue: options },
        { provide: APP_INTERCEPTOR, useClass: ConsistencyInterceptor },
      ],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    const { router, ...options } = this.options;
    consumer.apply(consistency(router, options)).forRoutes({ path: '*path', method: RequestMethod.ALL });
  }
}
