import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn, type Router } from 'pg-replica-router';
import { consistency } from 'pg-replica-router/express';
import { startCluster, type Cluster } from 'pg-replica-router/testing';
import { routerFor, settle } from '../helpers/cluster.js';
import { Browser, listen } from '../helpers/http.js';
import { installOtel, points, spanTree } from '../helpers/otel.js';
import { tokenPosition } from '../helpers/tokens.js';

const otel = installOtel(); // before any router exists, as the Node SDK would be
let cluster: Cluster;
let router: Router;
let url: string;
let close: () => Promise<void>;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 2 });
  router = routerFor(cluster, { tokenSecret: 'telemetry secret, 16+ bytes', logger: false });
  await router.query('create table follows (follower text, target text)');
  await settle(router, cluster);
  const app = express();
  app.use(consistency(router));
  // One request that writes, then reads.
  app.post('/follow/:target', async (req, res) => {
    await router.query('insert into follows values ($1, $2)', ['me', req.params.target]);
    const { rows } = await router.query('select count(*)::int as n from follows where follower = $1', ['me']);
    res.json(rows[0]);
  });
  app.get('/follows/:target', async (req, res) => {
    const { rows } = await router.query('select count(*)::int as n from follows where follower = $1 and target = $2', ['me', req.params.target]);
    res.json(rows[0]);
  });
  ({ url, close } = await listen(app));
});

afterAll(async () => {
  await close?.();
  await router?.close();
  await cluster?.stop();
  await otel.shutdown();
});

const attr = (span: { attributes: Record<string, unknown> }, key: string) => span.attributes[key];

/** The request span ends when the response closes, which may be just after the client has the body. */
async function requestSpans(count: number) {
  await expect.poll(() => otel.spans().filter((s) => s.name === 'pgrr.request').length, { timeout: 2000 }).toBeGreaterThanOrEqual(count);
  return otel.spans();
}

describe('traces', () => {
  it('a write-then-read request: middleware span, routing spans with reason and LSNs, pg CLIENT spans under them', async () => {
    otel.reset();
    const browser = new Browser();
    await browser.json(`${url}/follow/ada`, { method: 'POST' });
    const spans = await requestSpans(1);
    const tree = spanTree(spans, (s) => `${s.name}${s.attributes['pgrr.reason'] ? ` [${String(s.attributes['pgrr.reason'])}]` : ''}`);
    expect(tree).toMatch(/^pgrr\.request\n {2}pgrr\.route \[not-a-read\]\n( {4}pg.*\n)*( {4}pg\.query.*INSERT.*)\n( {4}pg.*\n)* {2}pgrr\.route \[wrote-in-scope\]\n( {4}pg.*\n)* {4}pg\.query.*SELECT/m);

    const request = spans.find((s) => s.name === 'pgrr.request')!;
    expect(request.kind).toBe(0); // INTERNAL
    expect(attr(request, 'pgrr.session.source')).toBe('new-cookie');
    expect(attr(request, 'pgrr.session.hash')).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(request.attributes)).not.toContain(browser.cookies.get('pgrr_sid')); // never the raw id
    expect(attr(request, 'pgrr.token.in')).toBe(false);
    expect(attr(request, 'pgrr.token.out')).toBe(true);

    const [write, read] = spans.filter((s) => s.name === 'pgrr.route').sort((a, b) => a.startTime[1] - b.startTime[1] + (a.startTime[0] - b.startTime[0]) * 1e9);
    for (const span of [write!, read!]) {
      expect(span.kind).toBe(0);
      expect(attr(span, 'db.system.name')).toBe('postgresql');
      expect(attr(span, 'db.namespace')).toBe('postgres');
      expect(attr(span, 'server.address')).toBe('127.0.0.1');
      expect(attr(span, 'server.port')).toBe(cluster.primary.port);
      expect(attr(span, 'pgrr.node')).toBe('primary');
      expect(attr(span, 'pgrr.node.role')).toBe('primary');
      expect(attr(span, 'pgrr.consistency')).toBe('session');
      expect(attr(span, 'pgrr.wait_ms')).toBe(0);
      expect(attr(span, 'pgrr.retry')).toBe(false);
    }
    expect(attr(write!, 'pgrr.statement.kind')).toBe('write');
    expect(attr(write!, 'pgrr.fallback')).toBe(false);
    expect(attr(read!, 'pgrr.statement.kind')).toBe('read');
    expect(attr(read!, 'pgrr.fallback')).toBe(true); // a read that could have used a replica
    const pgSpans = spans.filter((s) => s.name.startsWith('pg.query'));
    expect(pgSpans.every((s) => s.kind === 2)).toBe(true); // CLIENT
  });

  it('the next request reads on a replica with the floor and the replica position on the span', async () => {
    const browser = new Browser();
    await browser.json(`${url}/follow/grace`, { method: 'POST' });
    const floor = tokenPosition(browser.lastToken!).lsn;
    await settle(router, cluster);
    otel.reset();
    await browser.json(`${url}/follows/grace`);
    await requestSpans(1);
    const route = otel.spans().find((s) => s.name === 'pgrr.route')!;
    expect(attr(route, 'pgrr.node.role')).toBe('replica');
    expect(['caught-up', 'caught-up-live']).toContain(attr(route, 'pgrr.reason'));
    expect(parseLsn(attr(route, 'pgrr.floor_lsn') as string)).toBe(floor);
    expect(parseLsn(attr(route, 'pgrr.replica.replay_lsn') as string)).toBeGreaterThanOrEqual(floor);
    expect(attr(route, 'pgrr.fallback')).toBe(false);
    const request = otel.spans().find((s) => s.name === 'pgrr.request')!;
    expect(attr(request, 'pgrr.session.source')).toBe('cookie');
    expect(attr(request, 'pgrr.store.outcome')).toBe('hit');
    const pg = otel.spans().find((s) => s.name.startsWith('pg.query') && s.parentSpanContext?.spanId === route.spanContext().spanId)!;
    expect(pg).toBeDefined(); // the pg CLIENT span nests under the decision
    expect(pg.attributes['server.port'] ?? pg.attributes['net.peer.port']).toBe(cluster.replicas.find((r) => r.name === attr(route, 'pgrr.node'))!.port);
  });

  it('a checked-out client gets one routing span per binding, with its statements under it', async () => {
    otel.reset();
    const client = await router.pool.connect();
    try {
      await client.query('begin read only');
      await client.query('select 1');
      await client.query('commit');
    } finally {
      client.release();
    }
    const spans = otel.spans();
    const routes = spans.filter((s) => s.name === 'pgrr.route');
    expect(routes).toHaveLength(1);
    expect(attr(routes[0]!, 'pgrr.statement.kind')).toBe('begin-read-only');
    const children = spans.filter((s) => s.parentSpanContext?.spanId === routes[0]!.spanContext().spanId && s.name.startsWith('pg.query'));
    expect(children.length).toBe(3);
  });
});

describe('metrics', () => {
  it('count decisions by role and reason, and move lag gauges when a replica is paused and resumed', async () => {
    const value = (list: Array<[Record<string, unknown>, number]>, match: Record<string, unknown>) =>
      list.find(([a]) => Object.entries(match).every(([k, v]) => a[k] === v))?.[1];

    await settle(router, cluster);
    let m = await otel.collect();
    expect(value(points(m, 'pgrr.routing.decisions'), { 'pgrr.node.role': 'primary', 'pgrr.reason': 'not-a-read' })).toBeGreaterThan(0);
    expect(value(points(m, 'pgrr.routing.decisions'), { 'pgrr.node.role': 'primary', 'pgrr.reason': 'wrote-in-scope' })).toBeGreaterThan(0);
    expect(value(points(m, 'pgrr.replica.lag.bytes'), { 'pgrr.node': 'r1' })).toBe(0);
    expect(value(points(m, 'pgrr.replica.lag.seconds'), { 'pgrr.node': 'r1' })).toBe(0);
    expect(value(points(m, 'pgrr.node.up'), { 'pgrr.node': 'r1' })).toBe(1);
    expect(value(points(m, 'pgrr.store.circuit.open'), {})).toBe(0);

    const r1 = cluster.replicas[0]!;
    await r1.pauseReplay();
    try {
      await router.query("insert into follows select 'bulk', g::text from generate_series(1, 1000) g");
      const deadline = Date.now() + 10_000;
      do {
        await new Promise((resolve) => setTimeout(resolve, 100));
        m = await otel.collect();
      } while (
        !((value(points(m, 'pgrr.replica.lag.seconds'), { 'pgrr.node': 'r1' }) ?? 0) > 0.1 && (value(points(m, 'pgrr.replica.lag.bytes'), { 'pgrr.node': 'r1' }) ?? 0) > 0) &&
        Date.now() < deadline
      );
      expect(value(points(m, 'pgrr.replica.lag.bytes'), { 'pgrr.node': 'r1' })).toBeGreaterThan(0);
      expect(value(points(m, 'pgrr.replica.lag.seconds'), { 'pgrr.node': 'r1' })).toBeGreaterThan(0.1);
      expect(value(points(m, 'pgrr.replica.lag.bytes'), { 'pgrr.node': 'r2' })).toBe(0);
    } finally {
      await r1.resumeReplay();
    }
    await settle(router, cluster);
    m = await otel.collect();
    expect(value(points(m, 'pgrr.replica.lag.bytes'), { 'pgrr.node': 'r1' })).toBe(0);
    expect(value(points(m, 'pgrr.replica.lag.seconds'), { 'pgrr.node': 'r1' })).toBe(0);
  });

  it('count rejected tokens by cause', async () => {
    await router.withToken('garbage', () => router.query('select 1'));
    const m = await otel.collect();
    expect(points(m, 'pgrr.tokens.rejected').find(([a]) => a['pgrr.token.rejection'] === 'malformed')?.[1]).toBeGreaterThanOrEqual(1);
  });

  it('records no spans for the monitor\'s background polls', async () => {
    otel.reset();
    await new Promise((resolve) => setTimeout(resolve, 400)); // several polls at 100 ms
    expect(otel.spans().filter((s) => s.name.startsWith('pg'))).toEqual([]);
  });

  it('prints the example trace for docs/observability.md', async () => {
    otel.reset();
    const browser = new Browser();
    await browser.json(`${url}/follow/linus`, { method: 'POST' });
    await browser.json(`${url}/follows/linus`);
    await requestSpans(2);
    const keys = ['pgrr.node', 'pgrr.reason', 'pgrr.floor_lsn', 'pgrr.replica.replay_lsn', 'pgrr.fallback', 'pgrr.session.source', 'pgrr.store.outcome', 'pgrr.token.out'];
    const tree = spanTree(otel.spans(), (s) => {
      const shown = keys.filter((k) => s.attributes[k] !== undefined).map((k) => `${k}=${String(s.attributes[k])}`);
      return `${s.name}${shown.length ? `  ${shown.join(' ')}` : ''}`;
    });
    expect(tree.split('\n').filter((l) => l.startsWith('pgrr.request'))).toHaveLength(2);
    if (process.env.PRINT_TRACE) console.log(tree);
  });
});
