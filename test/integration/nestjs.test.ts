// pg-replica-router/nestjs on both of Nest's HTTP platforms (Express and Fastify), over HTTP with
// a real client and every replica paused: a session reads its own write (the module's
// middleware opens the session, its interceptor runs the handler inside it); a route's
// @RequireConsistency level holds and a client may only ask for a stronger one; a plain pool on a
// replica misses the row.
import 'reflect-metadata';
import { Controller, Get, Module, Param, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import { ConsistencyModule, RequireConsistency } from 'pg-replica-router/nestjs';
import type { Cluster } from 'pg-replica-router/testing';
import { Browser } from '../helpers/http.js';
import { naiveQuery, nodeByPort, routerFor, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

const COUNT = 'select count(*)::int as n, inet_server_port() as port from notes where author = $1';
let cluster: Cluster;
let router: Router;

const count = async (author: string) => {
  const { rows } = await router.query<{ n: number; port: number }>(COUNT, [author]);
  return { n: rows[0]!.n, node: nodeByPort(cluster, rows[0]!.port) };
};

@Controller('notes')
class NotesController {
  @Post(':author')
  async add(@Param('author') author: string) {
    await router.query('insert into notes (author) values ($1)', [author]);
    return { ok: true };
  }

  @Get(':author')
  read(@Param('author') author: string) {
    return count(author);
  }

  @Get('primary/:author')
  @RequireConsistency('primary')
  readOnPrimary(@Param('author') author: string) {
    return count(author);
  }

  @Get('eventual/:author')
  @RequireConsistency('eventual')
  readAnywhere(@Param('author') author: string) {
    return count(author);
  }
}

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2 });
  await cluster.primary.query('create table notes (id serial primary key, author text)');
  await cluster.waitForReplicas();
  router = routerFor(cluster, { tokenSecret: 'a nestjs test secret, 16+ bytes' });
  await settle(router, cluster);
});

afterEach(async () => {
  for (const replica of cluster.replicas) await replica.resumeReplay();
});

afterAll(async () => {
  await router?.close();
  await cluster?.stop();
});

const naiveCount = async (author: string) => (await naiveQuery<{ n: number }>(urlAs(cluster.replicas[0]!), COUNT, [author]))[0]!.n;

const json = async (res: Response) => {
  expect(res.status).toBe(200);
  return (await res.json()) as { n: number; node: string };
};

describe.each(['express', 'fastify'] as const)('pg-replica-router/nestjs on the %s platform', (platform) => {
  let close: () => Promise<void>;
  let url: string;

  beforeAll(async () => {
    @Module({ imports: [ConsistencyModule.forRoot({ router, clientLevels: true })], controllers: [NotesController] })
    class AppModule {}
    const app =
      platform === 'express'
        ? await NestFactory.create(AppModule, { logger: false })
        : await NestFactory.create(AppModule, new FastifyAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    close = () => app.close();
  });

  afterAll(async () => {
    await close?.();
  });

  it('a session (its cookie) reads its own write with every replica paused; a plain pool on a replica misses it', async () => {
    await cluster.waitForReplicas();
    for (const replica of cluster.replicas) await replica.pauseReplay();
    const author = `ann-${platform}`;
    const browser = new Browser();
    expect((await browser.fetch(`${url}/notes/${author}`, { method: 'POST' })).status).toBe(201);
    expect(browser.cookies.has('pgrr_sid')).toBe(true);
    expect(await json(await browser.fetch(`${url}/notes/${author}`))).toEqual({ n: 1, node: 'primary' });
    expect(await naiveCount(author)).toBe(0);
  });

  it('@RequireConsistency sets a route level; with clientLevels: true a client may ask for a stronger one, never a weaker one', async () => {
    await cluster.waitForReplicas();
    const browser = new Browser();
    expect((await json(await browser.fetch(`${url}/notes/primary/x`))).node).toBe('primary');
    expect((await json(await browser.fetch(`${url}/notes/primary/x`, { headers: { 'x-consistency': 'eventual' } }))).node).toBe('primary');
    expect((await json(await browser.fetch(`${url}/notes/eventual/x`))).node).not.toBe('primary');
    expect((await json(await browser.fetch(`${url}/notes/eventual/x`, { headers: { 'x-consistency': 'primary' } }))).node).toBe('primary');
  });
});
