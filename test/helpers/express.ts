import express, { type Express } from 'express';
import { afterAll, beforeAll } from 'vitest';
import type { Router, RouterOptions } from 'pg-replica-router';
import { consistency, type ConsistencyOptions } from 'pg-replica-router/express';
import type { Cluster, ClusterOptions } from 'pg-replica-router/testing';
import { routerFor, settle, startTestCluster } from './cluster.js';
import { listen } from './http.js';

/** What {@link useExpressApp} hands to the test file once everything is up. */
export interface ExpressAppEnv {
  cluster: Cluster;
  router: Router;
  /** The app's base URL (`http://127.0.0.1:<port>`). */
  url: string;
  app: Express;
}

export interface ExpressAppOptions {
  /** Merged over `{ replicas: 2 }`. */
  cluster?: ClusterOptions;
  /** Router options (or a function of the started cluster, e.g. for a Redis store), over {@link routerFor}'s. */
  router?: Partial<RouterOptions> | ((cluster: Cluster) => Partial<RouterOptions>);
  /** SQL run through the router before the monitor is settled (tables, rows). */
  setup?: string[];
  /** Options of the `consistency()` middleware. */
  consistency?: ConsistencyOptions;
  /** Middleware mounted before `consistency()` (e.g. express-session). */
  before?: (app: Express) => void;
  /** The app's routes, mounted after `consistency()`. */
  routes: (app: Express, router: Router, cluster: Cluster) => void;
  /** Runs after the server and the router are closed, before the cluster stops (e.g. an app's Redis client). */
  cleanup?: () => Promise<void> | void;
}

/**
 * The usual Express test-file set-up: a cluster, a router over it, some SQL run through the
 * router, the monitor settled, and an app with the `consistency()` middleware listening on a
 * random loopback port — and everything closed after the file (server, router, `cleanup`,
 * cluster). `ready` receives them once they are up.
 */
export function useExpressApp(options: ExpressAppOptions, ready: (env: ExpressAppEnv) => void): void {
  let cluster: Cluster | undefined;
  let router: Router | undefined;
  let close: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    cluster = await startTestCluster({ replicas: 2, ...options.cluster });
    router = routerFor(cluster, typeof options.router === 'function' ? options.router(cluster) : options.router);
    for (const statement of options.setup ?? []) await router.query(statement);
    await settle(router, cluster);
    const app = express();
    options.before?.(app);
    app.use(consistency(router, options.consistency));
    options.routes(app, router, cluster);
    const server = await listen(app);
    close = server.close;
    ready({ cluster, router, url: server.url, app });
  });
  afterAll(async () => {
    await close?.();
    await router?.close();
    await options.cleanup?.();
    await cluster?.stop();
  });
}
