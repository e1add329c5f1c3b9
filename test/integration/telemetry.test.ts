import { afterAll, describe, expect, it } from 'vitest';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { formatLsn, parseLsn, tryParseLsn, type Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { cachedAtLeast, settle } from '../helpers/cluster.js';
import { useExpressApp } from '../helpers/express.js';
import { Browser } from '../helpers/http.js';
import { installOtel, points, spanTree } from '../helpers/otel.js';
import { tokenPosition } from '../helpers/tokens.js';
import { comparable, docExampleTrace, EXAMPLE_KEYS, LSN_KEYS, parentOf, parseTrace } from '../helpers/doc-trace.js';

const otel = installOtel(); // before any router exists, as the Node SDK would be
afterAll(() => otel.shutdown()); // registered first, so it runs last: after the app, router and cluster are closed
let cluster: Cluster;
let router: Router;
let url: string;

useExpressApp(
  {
    router: { tokenSecret: 'telemetry secret, 16+ bytes', logger: false },
    setup: ['create table follows (follower text, target text)'],
    routes: (app, router) => {
      // One request that writes, then reads.
      app.post('/follow/:target', async (req, res) => {
        await router.query('insert into follows values ($1, $2)', ['me', req.params.target]);
        const { rows } = await router.query('select count(*)::int as n from follows where follower = $1', ['me']);
        res.json(rows[0]);
      });
      app.get('/follows/:target', async (req, res) => {
        const { rows } = await router.query('select count(*)::int as n from follows where follower = $1 and target = $2', [
          'me',
          req.params.target,
        ]);
        res.json(rows[0]);
      });
    },
  },
  (env) => {
    ({ cluster, router, url } = env);
  },
);

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
    expect(tree).toMatch(
      /^pgrr\.request\n {2}pgrr\.route \[not-a-read\]\n( {4}pg.*\n)*( {4}pg\.query.*INSERT.*)\n( {4}pg.*\n)* {2}pgrr\.route \[wrote-in-scope\]\n( {4}pg.*\n)* {4}pg\.query.*SELECT/m,
    );

    const request = spans.find((s) => s.name === 'pgrr.request')!;
    expect(request.kind).toBe(0); // INTERNAL
    expect(attr(request, 'pgrr.session.source')).toBe('new-cookie');
    expect(attr(request, 'pgrr.session.hash')).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(request.attributes)).not.toContain(browser.cookies.get('pgrr_sid')); // never the raw id
    expect(attr(request, 'pgrr.token.in')).toBe(false);
    expect(attr(request, 'pgrr.token.out')).toBe(true);

    const [write, read] = spans
      .filter((s) => s.name === 'pgrr.route')
      .sort((a, b) => a.startTime[1] - b.startTime[1] + (a.startTime[0] - b.startTime[0]) * 1e9);
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
    expect(['caught-up', 'caught-up-live', 'checked-in-flight']).toContain(attr(route, 'pgrr.reason'));
    expect(parseLsn(attr(route, 'pgrr.floor_lsn') as string)).toBe(floor);
    expect(parseLsn(attr(route, 'pgrr.replica.replay_lsn') as string)).toBeGreaterThanOrEqual(floor);
    expect(attr(route, 'pgrr.fallback')).toBe(false);
    const request = otel.spans().find((s) => s.name === 'pgrr.request')!;
    expect(attr(request, 'pgrr.session.source')).toBe('cookie');
    expect(attr(request, 'pgrr.store.outcome')).toBe('hit');
    const pg = otel.spans().find((s) => s.name.startsWith('pg.query') && s.parentSpanContext?.spanId === route.spanContext().spanId)!;
    expect(pg).toBeDefined(); // the pg CLIENT span nests under the decision
    expect(pg.attributes['server.port'] ?? pg.attributes['net.peer.port']).toBe(
      cluster.replicas.find((r) => r.name === attr(route, 'pgrr.node'))!.port,
    );
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
        !(
          (value(points(m, 'pgrr.replica.lag.seconds'), { 'pgrr.node': 'r1' }) ?? 0) > 0.1 &&
          (value(points(m, 'pgrr.replica.lag.bytes'), { 'pgrr.node': 'r1' }) ?? 0) > 0 &&
          // r2 replays the insert too; its gauge follows at its own next poll
          value(points(m, 'pgrr.replica.lag.bytes'), { 'pgrr.node': 'r2' }) === 0
        ) &&
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

  it('count client-requested levels, refused by default', async () => {
    await new Browser().json(`${url}/follows/x`, { headers: { 'x-consistency': 'primary' } });
    const m = await otel.collect();
    expect(points(m, 'pgrr.client_levels').find(([a]) => a['pgrr.client_level.outcome'] === 'refused')?.[1]).toBe(1);
    expect(points(m, 'pgrr.client_levels').find(([a]) => a['pgrr.client_level.outcome'] === 'honoured')).toBeUndefined();
  });

  it("records no spans for the monitor's background polls", async () => {
    otel.reset();
    await new Promise((resolve) => setTimeout(resolve, 400)); // several polls at 100 ms
    expect(otel.spans().filter((s) => s.name.startsWith('pg'))).toEqual([]);
  });

  it('produces the example trace shown in docs/observability.md', async () => {
    const browser = new Browser();
    otel.reset();
    await browser.json(`${url}/follow/linus`, { method: 'POST' });
    const post = [...(await requestSpans(1))];
    // The doc's GET reads a replica the router's cache already shows at the floor (reason
    // caught-up, no live check): wait for that between the requests, with no spans recorded (the
    // harness's own pg queries would be traced too).
    const floor = tokenPosition(browser.lastToken!).lsn;
    for (const replica of cluster.replicas) await cachedAtLeast(router, replica.name, formatLsn(floor));
    otel.reset();
    await browser.json(`${url}/follows/linus`);
    const get = [...(await requestSpans(1))];

    const spans: ReadableSpan[] = []; // spanTree describes the spans in the order it prints them
    const printed = spanTree([...post, ...get], (s) => {
      spans.push(s);
      const shown = EXAMPLE_KEYS.filter((k) => s.attributes[k] !== undefined).map((k) => `${k}=${String(s.attributes[k])}`);
      return `${s.name}${shown.length ? `  ${shown.join(' ')}` : ''}`;
    });
    if (process.env.PRINT_TRACE) console.log(printed);
    const produced = parseTrace(printed).map((line, i) => ({ ...line, span: spans[i]! }));
    const documented = parseTrace(docExampleTrace());

    // Same spans, same nesting, same attributes, same values — but for what differs from run to
    // run: which replica served, the LSNs, and whether a pool had to open a connection (pg.connect).
    expect(comparable(produced), 'docs/observability.md "An example trace" vs the trace produced').toEqual(comparable(documented));

    // What the doc shows in place of the run-to-run values must be possible too.
    const replicaNames = cluster.replicas.map((r) => r.name);
    for (const line of documented) {
      const node = line.attrs.get('pgrr.node');
      if (node !== undefined && node !== 'primary') expect(replicaNames, `doc: ${line.text}`).toContain(node);
      for (const key of LSN_KEYS) if (line.attrs.has(key)) expect(tryParseLsn(line.attrs.get(key)), `doc: ${line.text}`).toBeDefined();
      const [docFloor, docReplay] = [line.attrs.get('pgrr.floor_lsn'), line.attrs.get('pgrr.replica.replay_lsn')];
      if (docFloor !== undefined && docReplay !== undefined)
        expect(parseLsn(docReplay), `doc: ${line.text}: replay below floor`).toBeGreaterThanOrEqual(parseLsn(docFloor));
      if (line.name === 'pg.connect') expect(parentOf(documented, line)?.name, `doc: ${line.text}`).toBe('pgrr.route'); // where a pool opens a connection
    }
    for (const line of produced) if (line.name === 'pg.connect') expect(parentOf(produced, line)?.name).toBe('pgrr.route');

    // The produced values the comparison left out: the GET read on a replica at the POST's position.
    const route = produced.find((l) => l.name === 'pgrr.route' && l.attrs.get('pgrr.node') !== 'primary')!;
    expect(replicaNames).toContain(route.attrs.get('pgrr.node'));
    expect(parseLsn(route.attrs.get('pgrr.floor_lsn')!)).toBe(floor);
    expect(parseLsn(route.attrs.get('pgrr.replica.replay_lsn')!)).toBeGreaterThanOrEqual(floor);

    // The doc's notes on lines ("← pg_current_wal_insert_lsn(): …") name the SQL that span ran.
    const producedLines = produced.filter((l) => l.name !== 'pg.connect');
    documented
      .filter((l) => l.name !== 'pg.connect')
      .forEach((line, i) => {
        const fn = /([a-z_]+)\(\)/.exec(line.note ?? '')?.[1];
        if (fn)
          expect(
            String(producedLines[i]!.span.attributes['db.query.text'] ?? producedLines[i]!.span.attributes['db.statement']),
            `doc: ${line.text}`,
          ).toContain(fn);
      });
  });
});
