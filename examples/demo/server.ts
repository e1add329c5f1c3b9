import express from 'express';
import { Redis } from 'ioredis';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createRouter, memoryStore, redisStore, type LsnStore, type Router } from '../../lib/index.js';
import { findRedisServer, startCluster, type Cluster } from '../../lib/testing/index.js';
import { createApp, MODES, SCHEMA, type Mode } from './app.js';
import { PositionTimeline, positionsHandler } from './positions.js';
import { DecisionLog } from './telemetry-log.js';

export interface DemoOptions {
  /** Port of the page (0: any free port). */
  port?: number;
  /** An existing deployment instead of a local cluster: PRIMARY_URL, REPLICA_URLS (comma-separated), REDIS_URL. */
  env?: Record<string, string | undefined>;
  /**
   * The routing-decision log, when an OpenTelemetry SDK the caller registered feeds it (given as
   * one of its span processors, with a context manager). Default: a log with its own tracer provider.
   */
  decisions?: DecisionLog;
}

export interface Demo {
  url: string;
  cluster: Cluster | undefined;
  close(): Promise<void>;
}

function listen(app: express.Express, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  return new Promise((resolve) => {
    const server = app.listen(port, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((done) => (server.closeAllConnections(), server.close(() => done()))),
      }),
    );
  });
}

/**
 * Starts the follow-button demo: two application instances (each its own router, positions shared
 * through Redis), a front that serves the page and forwards the API to one instance or, round-robin,
 * to both, and — unless an existing deployment is given — its own primary, two replicas and Redis.
 */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const env = options.env ?? process.env;
  const log = options.decisions ?? new DecisionLog();
  if (!options.decisions) log.install(); // before the routers: their spans feed the live log

  let cluster: Cluster | undefined;
  let primaryUrl = env.PRIMARY_URL;
  let replicaUrls = (env.REPLICA_URLS ?? '').split(',').filter(Boolean);
  let redisUrl = env.REDIS_URL;
  if (!primaryUrl) {
    let withRedis = true;
    try {
      findRedisServer(undefined);
    } catch {
      withRedis = false;
    }
    cluster = await startCluster({ replicas: 2, redis: withRedis });
    primaryUrl = cluster.primary.connectionString;
    replicaUrls = cluster.replicas.map((r) => r.connectionString);
    redisUrl = cluster.redis?.url;
  }

  const clients: Redis[] = [];
  const shared = memoryStore(); // only when there is no Redis: both instances live in this process
  const store = (): LsnStore => {
    if (!redisUrl) return shared;
    const client = new Redis(redisUrl);
    client.on('error', () => {});
    clients.push(client);
    return redisStore(client);
  };
  const names = cluster ? cluster.replicas.map((r) => r.name) : replicaUrls.map((_, i) => `replica${i + 1}`);
  const makeRouter = (): Router =>
    createRouter({
      primary: { connectionString: primaryUrl },
      replicas: replicaUrls.map((connectionString, i) => ({ name: names[i], connectionString })),
      store: store(),
      tokenSecret: env.CONSISTENCY_TOKEN_SECRET ?? 'demo secret, not for production use',
      monitor: { intervalMs: 250 },
      logger: false,
    });
  const routers = [makeRouter(), makeRouter()];
  for (const statement of SCHEMA.split(';')
    .map((s) => s.trim())
    .filter(Boolean))
    await routers[0]!.query(statement);

  // The chart's positions, as the first instance's monitor sees them, and floors as the store holds them.
  const timeline = new PositionTimeline(routers[0]!, store()).start();

  let mode: Mode = 'pgrr';
  let roundRobin = false;
  let turn = 0;
  const instances = await Promise.all(
    routers.map(async (router, i) => ({
      name: `app-${i + 1}`,
      router,
      server: await listen(createApp({ name: `app-${i + 1}`, router, mode: () => mode })),
    })),
  );

  const front = express();
  front.use(express.json());
  front.get('/control/status', (req, res) => {
    const since = Number(req.query.since ?? 0);
    res.json({
      mode,
      modes: MODES,
      roundRobin,
      store: redisUrl ? 'redis' : 'memory',
      replicas: cluster
        ? cluster.replicas.map((r) => ({ name: r.name, paused: (r as unknown as { paused?: boolean }).paused ?? false }))
        : names.map((name) => ({ name, paused: false })),
      controls: Boolean(cluster),
      instances: instances.map((i) => ({
        name: i.name,
        nodes: i.router.topology().nodes.map((n) => ({ name: n.name, status: n.status, served: n.served, lagMs: n.lagMs })),
      })),
      decisions: log.entries(since),
      now: Date.now(),
    });
  });
  front.get('/control/positions', positionsHandler(timeline, log, names));
  front.post('/control/mode', (req, res) => {
    if (typeof req.body?.mode === 'string' && Object.hasOwn(MODES, req.body.mode)) mode = req.body.mode as Mode;
    res.json({ mode });
  });
  front.post('/control/round-robin', (req, res) => {
    roundRobin = Boolean(req.body?.on);
    res.json({ roundRobin });
  });
  front.post('/control/replicas/:name', async (req, res, next) => {
    try {
      const replica = cluster?.replicas.find((r) => r.name === req.params.name);
      if (!replica) return void res.status(404).json({ error: 'no such replica, or not a local cluster' });
      if (typeof req.body?.delayMs === 'number') await replica.setApplyDelay(Math.max(0, Math.min(5000, Math.round(req.body.delayMs))));
      if (req.body?.paused === true) await replica.pauseReplay();
      if (req.body?.paused === false) await replica.resumeReplay();
      res.json({ ok: true });
    } catch (err) {
      next(err);
    }
  });
  // The API goes to one instance, or to both in turn: positions are shared through the store.
  front.use('/api', (req, res) => {
    const target = instances[roundRobin ? turn++ % instances.length : 0]!;
    // The body was parsed here, and is sent again re-serialised: its length is not the client's.
    const { 'content-length': _length, 'transfer-encoding': _encoding, ...headers } = req.headers;
    const upstream = request(
      { host: '127.0.0.1', port: target.server.port, method: req.method, path: req.originalUrl, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.status(502).end());
    if (req.body !== undefined && req.headers['content-type']?.includes('json')) upstream.end(JSON.stringify(req.body));
    else req.pipe(upstream);
  });
  front.use(express.static(fileURLToPath(new URL('./public/', import.meta.url))));
  const page = await listen(front, options.port ?? 0);

  return {
    url: `http://127.0.0.1:${page.port}`,
    cluster,
    async close() {
      await page.close();
      await timeline.stop();
      for (const instance of instances) await instance.server.close();
      for (const router of routers) await router.close();
      for (const client of clients) client.disconnect();
      await cluster?.stop();
    },
  };
}
