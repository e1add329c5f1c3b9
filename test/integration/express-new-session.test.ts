// A brand-new session (the middleware issues its cookie in this very request) owes nothing: its
// reads use replicas at once, with no primary sample. A key the store does not hold otherwise
// (a lost position, a new identity) is owed the primary's position: see store-forgets.test.ts.
import { describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort } from '../helpers/cluster.js';
import { useExpressApp } from '../helpers/express.js';
import { Browser } from '../helpers/http.js';

let cluster: Cluster;
let router: Router;
let url: string;

useExpressApp(
  {
    setup: ['create table things (id int)'],
    routes: (app, router, cluster) => {
      app.get('/where', async (_req, res) => {
        const { rows } = await router.query('select inet_server_port() as port');
        res.json({ node: nodeByPort(cluster, rows[0]!.port) });
      });
    },
  },
  (env) => {
    ({ cluster, router, url } = env);
  },
);

describe('a session the middleware creates', () => {
  it('reads a replica on its first request without sampling the primary; a client keeping its cookie stays known', async () => {
    const before = router.topology().counters.positionReads;
    const browser = new Browser();
    const first = (await (await browser.fetch(`${url}/where`)).json()) as { node: string };
    expect(first.node).toMatch(/^r[12]$/);
    expect(router.topology().counters.positionReads - before).toBe(0);
    const again = (await (await browser.fetch(`${url}/where`)).json()) as { node: string };
    expect(again.node).toBe(first.node); // its stored position: monotonic, on the same replica
    expect(router.topology().counters.positionReads - before).toBe(0);
  });
});
