import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CBaggagePropagator } from '@opentelemetry/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTokenBaggage, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { routerFor, settle } from '../helpers/cluster.js';
import { useExpressApp } from '../helpers/express.js';

const SECRET = 'baggage secret, 16+ bytes long';
let cluster: Cluster;
let a: Router; // the calling service's router
let b: Router; // the other service's, behind its Express app at `url`
let url: string;

beforeAll(() => {
  // What an application with the OpenTelemetry SDK has: a context manager and the W3C baggage propagator.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CBaggagePropagator());
});
afterAll(() => {
  // registered before the app's, so it runs after it
  propagation.disable();
  context.disable();
});

useExpressApp(
  {
    cluster: { replicas: 1 },
    router: { tokenSecret: SECRET },
    setup: ['create table notes (body text)'],
    consistency: { cookie: false },
    routes: (service, b) => {
      service.get('/notes', async (_req, res) => {
        res.json((await b.query('select count(*)::int as n from notes')).rows[0]);
      });
    },
    cleanup: () => a?.close(),
  },
  (env) => {
    ({ cluster, router: b, url } = env);
  },
);

beforeAll(async () => {
  a = routerFor(cluster, { tokenSecret: SECRET });
  await settle(a, cluster);
});

describe('W3C baggage propagation of the token', () => {
  it('withTokenBaggage puts the token in baggage; the other service reads it back from the baggage header', async () => {
    await cluster.replicas[0]!.pauseReplay();
    try {
      await a.query("insert into notes values ('x')");
      const headers: Record<string, string> = {};
      await withTokenBaggage(a, () => propagation.inject(context.active(), headers)); // what an instrumented HTTP client does
      expect(headers.baggage).toMatch(/^pgrr\.token=1\./);
      const withBaggage = await (await fetch(`${url}/notes`, { headers })).json();
      expect(withBaggage).toEqual({ n: 1 });
      const without = await (await fetch(`${url}/notes`)).json();
      expect(without).toEqual({ n: 0 }); // a stranger without the token may read the paused replica
    } finally {
      await cluster.replicas[0]!.resumeReplay();
    }
  });
});
