import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CBaggagePropagator } from '@opentelemetry/core';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTokenBaggage, type Router } from 'pg-replica-router';
import { consistency } from 'pg-replica-router/express';
import { startCluster, type Cluster } from 'pg-replica-router/testing';
import { routerFor, settle } from '../helpers/cluster.js';
import { listen } from '../helpers/http.js';

let cluster: Cluster;
let a: Router;
let b: Router;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  // What an application with the OpenTelemetry SDK has: a context manager and the W3C baggage propagator.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CBaggagePropagator());
  cluster = await startCluster({ replicas: 1 });
  a = routerFor(cluster, { tokenSecret: 'baggage secret, 16+ bytes long' });
  b = routerFor(cluster, { tokenSecret: 'baggage secret, 16+ bytes long' });
  await a.query('create table notes (body text)');
  await settle(a, cluster);
  await settle(b, cluster);
});

afterAll(async () => {
  for (const close of closers) await close();
  await a?.close();
  await b?.close();
  await cluster?.stop();
  propagation.disable();
  context.disable();
});

describe('W3C baggage propagation of the token', () => {
  it('withTokenBaggage puts the token in baggage; the other service reads it back from the baggage header', async () => {
    const service = express();
    service.use(consistency(b, { cookie: false }));
    service.get('/notes', async (_req, res) => {
      res.json((await b.query('select count(*)::int as n from notes')).rows[0]);
    });
    const server = await listen(service);
    closers.push(server.close);

    await cluster.replicas[0]!.pauseReplay();
    try {
      await a.query("insert into notes values ('x')");
      const headers: Record<string, string> = {};
      await withTokenBaggage(a, () => propagation.inject(context.active(), headers)); // what an instrumented HTTP client does
      expect(headers.baggage).toMatch(/^pgrr\.token=1\./);
      const withBaggage = await (await fetch(`${server.url}/notes`, { headers })).json();
      expect(withBaggage).toEqual({ n: 1 });
      const without = await (await fetch(`${server.url}/notes`)).json();
      expect(without).toEqual({ n: 0 }); // a stranger without the token may read the paused replica
    } finally {
      await cluster.replicas[0]!.resumeReplay();
    }
  });
});
