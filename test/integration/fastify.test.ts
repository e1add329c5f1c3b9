// pg-replica-router/fastify over HTTP with a real client (fetch, cookies kept by test/helpers/http's
// Browser): the same guarantees as the Express middleware. Every replica is paused after a write,
// so a read that shows the write came from a node past the session's floor; the same route read
// without the plugin (a plain pool on a replica) misses it.
import { Readable } from 'node:stream';
import fastifyCookie from '@fastify/cookie';
import fastifySecureSession from '@fastify/secure-session';
import fastifySession from '@fastify/session';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import { consistency } from 'pg-replica-router/fastify';
import type { Cluster } from 'pg-replica-router/testing';
import { Browser } from '../helpers/http.js';
import { naiveQuery, nodeByPort, routerFor, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

const SECRET = 'a fastify test secret, 16+ bytes';
let cluster: Cluster;
let router: Router;
let app: FastifyInstance;
let url: string;

const COUNT = 'select count(*)::int as n, inet_server_port() as port from notes where author = $1';

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2 });
  await cluster.primary.query('create table notes (id serial primary key, author text)');
  await cluster.waitForReplicas();
  router = routerFor(cluster, { tokenSecret: SECRET });
  await settle(router, cluster);
  app = Fastify();
  await app.register(consistency, { router, clientLevels: true, session: (req) => req.headers['x-user']?.toString() });
  const count = async (author: string) => {
    const { rows } = await router.query<{ n: number; port: number }>(COUNT, [author]);
    return { n: rows[0]!.n, node: nodeByPort(cluster, rows[0]!.port) };
  };
  app.post<{ Params: { author: string } }>('/notes/:author', async (request) => {
    await router.query('insert into notes (author) values ($1)', [request.params.author]);
    return { ok: true };
  });
  app.get<{ Params: { author: string } }>('/notes/:author', async (request) => count(request.params.author));
  app.get<{ Params: { author: string } }>('/primary/:author', { config: { consistency: 'primary' } }, async (request) =>
    count(request.params.author),
  );
  app.get<{ Params: { author: string } }>('/eventual/:author', { config: { consistency: 'eventual' } }, async (request) =>
    count(request.params.author),
  );
  // A write, then a streamed reply; and a write, then a hijacked reply written to the socket.
  app.post<{ Params: { author: string } }>('/stream/:author', async (request, reply) => {
    await router.query('insert into notes (author) values ($1)', [request.params.author]);
    return reply.type('text/plain').send(Readable.from(['streamed ', 'body']));
  });
  app.post<{ Params: { author: string } }>('/hijack/:author', async (request, reply) => {
    await router.query('insert into notes (author) values ($1)', [request.params.author]);
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/plain' });
    reply.raw.end('hijacked');
  });
  url = await app.listen({ port: 0, host: '127.0.0.1' });
});

afterEach(async () => {
  for (const replica of cluster.replicas) await replica.resumeReplay();
});

afterAll(async () => {
  await app?.close();
  await router?.close();
  await cluster?.stop();
});

const pauseAll = async () => {
  await cluster.waitForReplicas();
  for (const replica of cluster.replicas) await replica.pauseReplay();
};

const naiveCount = async (author: string) => (await naiveQuery<{ n: number }>(urlAs(cluster.replicas[0]!), COUNT, [author]))[0]!.n;

const json = async (res: Response) => {
  expect(res.status).toBe(200);
  return (await res.json()) as { n: number; node: string };
};

describe('pg-replica-router/fastify', () => {
  it("a browser's session (the plugin's cookie) reads its write with every replica paused; the naive read misses it", async () => {
    await pauseAll();
    const browser = new Browser();
    expect((await browser.fetch(`${url}/notes/ann`, { method: 'POST' })).status).toBe(200);
    expect(browser.cookies.has('pgrr_sid')).toBe(true);
    expect(await json(await browser.fetch(`${url}/notes/ann`))).toEqual({ n: 1, node: 'primary' });
    expect(await naiveCount('ann')).toBe(0);
    // Another browser, a session of its own: nothing to read past.
    expect((await json(await new Browser().fetch(`${url}/notes/ann`))).node).not.toBe('primary');
  });

  it('a token-only client (no cookies) and the session option (a user id header) identify the session too', async () => {
    await pauseAll();
    const tokens = new Browser();
    await tokens.fetch(`${url}/notes/bob`, { method: 'POST', sendCookies: false });
    expect(tokens.lastToken).toBeDefined();
    expect(await json(await tokens.fetch(`${url}/notes/bob`, { sendCookies: false, sendToken: true }))).toEqual({ n: 1, node: 'primary' });
    await fetch(`${url}/notes/cid`, { method: 'POST', headers: { 'x-user': '42' } });
    expect(await json(await fetch(`${url}/notes/cid`, { headers: { 'x-user': '42' } }))).toEqual({ n: 1, node: 'primary' });
    expect(await naiveCount('bob')).toBe(0);
    expect(await naiveCount('cid')).toBe(0);
  });

  it('the reply is held until the position is stored: a streamed reply and a hijacked one', async () => {
    await pauseAll();
    const browser = new Browser();
    // The next request goes as soon as the headers are in, before the body is read.
    const streamed = await browser.fetch(`${url}/stream/dee`, { method: 'POST' });
    expect(streamed.headers.get('x-consistency-token')).toBeTruthy();
    expect(await json(await browser.fetch(`${url}/notes/dee`))).toEqual({ n: 1, node: 'primary' });
    expect(await streamed.text()).toBe('streamed body');
    const hijacked = await browser.fetch(`${url}/hijack/eve`, { method: 'POST' });
    expect(await json(await browser.fetch(`${url}/notes/eve`))).toEqual({ n: 1, node: 'primary' });
    expect(await hijacked.text()).toBe('hijacked');
    expect(await naiveCount('dee')).toBe(0);
    expect(await naiveCount('eve')).toBe(0);
  });

  it('per-route levels (config.consistency); with clientLevels: true a client may ask for a stronger level, never a weaker one', async () => {
    await cluster.waitForReplicas();
    const browser = new Browser();
    expect((await json(await browser.fetch(`${url}/primary/x`))).node).toBe('primary');
    expect((await json(await browser.fetch(`${url}/primary/x`, { headers: { 'x-consistency': 'eventual' } }))).node).toBe('primary');
    expect((await json(await browser.fetch(`${url}/eventual/x`))).node).not.toBe('primary');
    expect((await json(await browser.fetch(`${url}/eventual/x`, { headers: { 'x-consistency': 'primary' } }))).node).toBe('primary');
    expect((await json(await browser.fetch(`${url}/eventual/x?consistency=primary`))).node).toBe('primary');
  });

  it("@fastify/session's id keys the session (no cookie of ours is issued)", async () => {
    const withSessions = Fastify();
    await withSessions.register(fastifyCookie);
    await withSessions.register(fastifySession, { secret: 'a session secret of at least 32 characters!', cookie: { secure: false } });
    await withSessions.register(consistency, { router });
    withSessions.post<{ Params: { author: string } }>('/notes/:author', async (request) => {
      (request.session as unknown as { set(key: string, value: unknown): void }).set('seen', true); // a session worth saving
      await router.query('insert into notes (author) values ($1)', [request.params.author]);
      return { ok: true };
    });
    withSessions.get<{ Params: { author: string } }>('/notes/:author', async (request) => {
      const { rows } = await router.query<{ n: number; port: number }>(COUNT, [request.params.author]);
      return { n: rows[0]!.n, node: nodeByPort(cluster, rows[0]!.port) };
    });
    const base = await withSessions.listen({ port: 0, host: '127.0.0.1' });
    try {
      await pauseAll();
      const browser = new Browser();
      await browser.fetch(`${base}/notes/fay`, { method: 'POST' });
      expect([...browser.cookies.keys()]).toEqual(['sessionId']);
      expect(await json(await browser.fetch(`${base}/notes/fay`))).toEqual({ n: 1, node: 'primary' });
      expect(await naiveCount('fay')).toBe(0);
    } finally {
      await withSessions.close();
    }
  });

  it('@fastify/secure-session (no id of its own): the session option keys the session on the user it holds', async () => {
    const secure = Fastify();
    await secure.register(fastifySecureSession, { key: Buffer.alloc(32, 7), cookie: { path: '/', secure: false } });
    type Secure = { get(key: string): unknown; set(key: string, value: unknown): void };
    const sessionOf = (request: unknown) => (request as { session: Secure }).session;
    await secure.register(consistency, {
      router,
      cookie: false,
      session: (request) => sessionOf(request).get('user') as string | undefined,
    });
    secure.post<{ Params: { user: string } }>('/login/:user', async (request) => {
      sessionOf(request).set('user', request.params.user);
      return { ok: true };
    });
    secure.post<{ Params: { author: string } }>('/notes/:author', async (request) => {
      await router.query('insert into notes (author) values ($1)', [request.params.author]);
      return { ok: true };
    });
    secure.get<{ Params: { author: string } }>('/notes/:author', async (request) => {
      const { rows } = await router.query<{ n: number; port: number }>(COUNT, [request.params.author]);
      return { n: rows[0]!.n, node: nodeByPort(cluster, rows[0]!.port) };
    });
    const base = await secure.listen({ port: 0, host: '127.0.0.1' });
    try {
      await pauseAll();
      const browser = new Browser();
      await browser.fetch(`${base}/login/gil`, { method: 'POST' });
      await browser.fetch(`${base}/notes/gil`, { method: 'POST' });
      expect([...browser.cookies.keys()]).toEqual(['session']); // secure-session's cookie only
      expect(await json(await browser.fetch(`${base}/notes/gil`))).toEqual({ n: 1, node: 'primary' });
      expect(await naiveCount('gil')).toBe(0);
    } finally {
      await secure.close();
    }
  });

  it('bad options fail the registration with a stable code', async () => {
    await expect(
      Fastify()
        .register(consistency, { router: {} as Router })
        .ready(),
    ).rejects.toMatchObject({ code: 'ERR_PGRR_INVALID_OPTION' });
    await expect(Fastify().register(consistency, { router, tokenHeader: 'bad header' }).ready()).rejects.toMatchObject({
      code: 'ERR_PGRR_INVALID_OPTION',
    });
  });
});
