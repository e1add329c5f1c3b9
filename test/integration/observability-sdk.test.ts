// docs/observability.md's setup, run as users run it: the package as npm packs it, installed in
// an application directory; an ESM Express app on pg-replica-router/express (as the app role)
// started with `node --import ./instrumentation.mjs app.mjs`, where instrumentation.mjs is the
// doc's block (NodeSDK, the HTTP, Express and pg instrumentations, OTLP/HTTP); its traces and
// metrics read back from an OTLP receiver on loopback.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn } from 'pg-replica-router';
import { startCluster, type Cluster } from 'pg-replica-router/testing';
import { POLL_SQL } from '../../lib/node-poll.js';
import { PRIMARY_POSITION_SQL, sampleSql } from '../../lib/position-sql.js';
import { startApp, stopApp, type AppProcess } from '../fixtures/otel-app/app-process.js';
import { SPAN_KIND, startReceiver, traceTree, type ReceivedSpan, type Receiver } from '../fixtures/otel-app/receiver.js';
import { installPackage, packPackage, writeFiles } from '../helpers/package-tarball.js';

const fixture = (name: string) => readFile(fileURLToPath(new URL(`../fixtures/otel-app/${name}`, import.meta.url)), 'utf8');
const SERVER = SPAN_KIND.server;

let cluster: Cluster;
let receiver: Receiver;
let work: string;
let appDir: string;
let app: AppProcess;

/** The app's environment: the cluster as the app role, the receiver, export every 100 ms (not 5 s). */
const appEnv = (): Record<string, string> => ({
  PORT: '0',
  PRIMARY_URL: cluster.primary.appConnectionString!,
  REPLICA_URLS: cluster.replicas.map((r) => r.appConnectionString!).join(','),
  CONSISTENCY_TOKEN_SECRET: 'observability test secret, 16+ bytes',
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_SERVICE_NAME: 'notes',
  OTEL_BSP_SCHEDULE_DELAY: '100', // batches every 100 ms instead of 5 s
  OTEL_METRIC_EXPORT_INTERVAL: '500',
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', // the metric exporter NodeSDK makes from the environment
});

beforeAll(async () => {
  cluster = await startCluster({ replicas: 1, appRole: true });
  await cluster.primary.query('create table notes (id serial primary key, body text not null)');
  await cluster.waitForReplicas();
  receiver = await startReceiver();
  work = await mkdtemp(join(tmpdir(), 'pgrr-otel-'));
  appDir = join(work, 'app');
  await installPackage((await packPackage(work)).tarball, appDir);
  await writeFiles(appDir, { 'instrumentation.mjs': await fixture('instrumentation.mjs'), 'app.mjs': await fixture('app.mjs') });
  app = await startApp(appDir, ['--import', './instrumentation.mjs', 'app.mjs'], appEnv());
});

afterAll(async () => {
  await stopApp(app);
  await receiver?.close();
  if (work) await rm(work, { recursive: true, force: true });
  await cluster?.stop();
});

/** The app's HTTP API as a browser calls it (keeps the session cookie), each request in a trace of its own. */
let cookie = '';
async function call(path: string, body?: unknown, headers: Record<string, string> = { cookie }) {
  const traceId = randomBytes(16).toString('hex');
  const parentId = randomBytes(8).toString('hex'); // the caller's span, as an instrumented client sends it
  const res = await fetch(`${app.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${parentId}-01`, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (headers.cookie !== undefined) cookie = res.headers.getSetCookie()[0]?.split(';')[0] ?? cookie;
  expect(res.ok, `${path}: ${res.status}; app stderr:\n${app.stderr()}`).toBe(true);
  return { traceId, parentId, token: res.headers.get('x-consistency-token'), json: (await res.json()) as unknown };
}

const traceOf = (traceId: string) => receiver.trace(traceId);

const APP_SQL = new Set(['insert into notes (body) values ($1) returning id', 'select id, body from notes where id = $1']);
const text = (s: ReceivedSpan) => String(s.attributes['db.query.text']);

/** The router's own queries, by what they are for (docs/observability.md, "What you see"). */
const ROUTER_SQL = new Map([
  [PRIMARY_POSITION_SQL, "the write's position"],
  [sampleSql('replica'), 'live check'],
  [sampleSql('primary'), "the primary's position"],
]);

/**
 * What a user looks at: the HTTP and Express spans, the router's, and every query (the app's, the
 * router's by purpose, any other by its SQL); pool checkouts and connects left out.
 */
function userTree(spans: readonly ReceivedSpan[]): string {
  return traceTree(spans, (s) => {
    const a = s.attributes;
    if (s.kind === SERVER) return `${s.name} (server)`;
    if (a['express.type'] !== undefined) return s.name;
    if (s.name === 'pgrr.request') return `pgrr.request source=${a['pgrr.session.source']} store=${a['pgrr.store.outcome']}`;
    if (s.name === 'pgrr.route') return `pgrr.route node=${a['pgrr.node']} reason=${a['pgrr.reason']} fallback=${a['pgrr.fallback']}`;
    if (!s.name.startsWith('pg.query')) return undefined;
    const purpose = APP_SQL.has(text(s)) ? '' : ` ← ${ROUTER_SQL.get(text(s)) ?? text(s)}`;
    return `${s.name} port=${a['server.port']}${purpose}`;
  });
}

/** The app's view of the nodes (fetched without the session cookie: not part of the session). */
const topology = async () =>
  ((await (await fetch(`${app.url}/topology`)).json()) as { nodes: Array<{ name: string; status: string; lagBytes?: number }> }).nodes;

const route = (spans: readonly ReceivedSpan[]) => spans.filter((s) => s.name === 'pgrr.route');

describe('NodeSDK + HTTP/Express/pg instrumentations + OTLP/HTTP, the app in its own process', () => {
  it("runs docs/observability.md's instrumentation block verbatim", async () => {
    const doc = await readFile(fileURLToPath(new URL('../../docs/observability.md', import.meta.url)), 'utf8');
    const block = /```ts\n(\/\/ instrumentation\.mjs[\s\S]*?)```/.exec(doc)?.[1];
    expect(block).toBe(await fixture('instrumentation.mjs'));
  });

  it("an idle app exports no spans: the monitor's polls (every 100 ms here) are not traced", async () => {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(receiver.spans.map((s) => s.name)).toEqual([]);
  });

  let noteId = 0;
  let floor = '';
  let token = '';

  it('a write: HTTP server span → Express request handler → pgrr.route to the primary (not-a-read) → pg INSERT on the primary', async () => {
    await expect.poll(async () => (await topology()).every((n) => n.status === 'up'), { timeout: 15_000 }).toBe(true);
    await cluster.replicas[0]!.pauseReplay(); // the replica will not see the write until resumed
    const write = await call('/notes', { body: 'hello' });
    noteId = (write.json as { id: number }).id;
    token = write.token!;
    const spans = await traceOf(write.traceId);
    expect(spans.find((s) => s.kind === SERVER)!.parentSpanId).toBe(write.parentId); // the caller's trace, continued
    expect([...receiver.exports]).toContain('/v1/traces application/json');
    const primary = cluster.primary.port;
    expect(userTree(spans)).toBe(
      [
        'POST /notes (server)',
        '  middleware - jsonParser',
        '  middleware - consistencyMiddleware',
        '    pgrr.request source=new-cookie store=not-read',
        '  request handler',
        '    pgrr.route node=primary reason=not-a-read fallback=false',
        `      pg.query:INSERT postgres port=${primary}`,
        `    pg.query:SELECT postgres port=${primary} ← the write's position`, // once committed: one round trip
      ].join('\n'),
    );
    const [span] = route(spans);
    expect(span!.attributes).toMatchObject({
      'db.system.name': 'postgresql',
      'server.port': primary,
      'pgrr.node.role': 'primary',
      'pgrr.statement.kind': 'write',
      'pgrr.consistency': 'session',
    });
  });

  it('the read that follows, the replica paused: pgrr.route to r1 with its check in flight (behind: dropped), then to the primary (replica-behind, a fallback)', async () => {
    const read = await call(`/notes/${noteId}`);
    expect(read.json).toEqual({ id: noteId, body: 'hello' }); // read-your-writes
    const spans = await traceOf(read.traceId);
    const primary = cluster.primary.port;
    const replica = cluster.replicas[0]!.port;
    expect(userTree(spans)).toBe(
      [
        `GET /notes/:id (server)`,
        '  middleware - jsonParser',
        '  middleware - consistencyMiddleware',
        '    pgrr.request source=cookie store=hit',
        '  request handler',
        '    pgrr.route node=r1 reason=checked-in-flight fallback=false',
        `      pg.query:SELECT postgres port=${replica} ← live check`, // r1's replay position, sent with the read: behind the floor
        `      pg.query:SELECT postgres port=${replica}`, // the read: its answer dropped
        '    pgrr.route node=primary reason=replica-behind fallback=true',
        `      pg.query:SELECT postgres port=${primary}`,
        `    pg.query:SELECT postgres port=${primary} ← the primary's position`, // what the read observed (monotonic reads)
      ].join('\n'),
    );
    const [checked, span] = route(spans);
    expect(checked!.attributes).toMatchObject({ 'pgrr.node': 'r1', 'pgrr.retried': true });
    floor = String(span!.attributes['pgrr.floor_lsn']);
    expect(floor).not.toBe('0/0');
    expect(span!.attributes).toMatchObject({ 'pgrr.statement.kind': 'read', 'pgrr.wait_ms': 0, 'pgrr.retry': false });
    expect(span!.attributes['pgrr.replica.replay_lsn']).toBeUndefined(); // not on a replica
  });

  it("another client with only the session's token, in W3C baggage: the middleware reads it (pgrr.token.in) and the read goes to the primary", async () => {
    const read = await call(`/notes/${noteId}`, undefined, { baggage: `pgrr.token=${encodeURIComponent(token)}` });
    expect(read.json).toEqual({ id: noteId, body: 'hello' }); // r1 is still paused: without the token this client would read it there, stale
    const spans = await traceOf(read.traceId);
    const request = spans.find((s) => s.name === 'pgrr.request')!;
    expect(request.attributes).toMatchObject({ 'pgrr.token.in': true, 'pgrr.session.source': 'token' });
    expect(route(spans).map((s) => [s.attributes['pgrr.node'], s.attributes['pgrr.reason']])).toEqual([
      ['r1', 'checked-in-flight'], // r1 behind the token's position: the answer dropped
      ['primary', 'replica-behind'],
    ]);
  });

  it("no monitor poll inside a request's trace, even when one waits for the connection a read's live check holds", async () => {
    // Each read checks r1 (in its own flight), and samples the primary after it on the monitor's connection;
    // a poll due meanwhile waits for the connection (before the fix: 8 reads in 40 carried one).
    const traces: string[] = [];
    for (let i = 0; i < 30; i++) {
      traces.push((await call(`/notes/${noteId}`)).traceId);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const polls: string[] = [];
    for (const traceId of traces) if ((await traceOf(traceId)).some((s) => text(s) === POLL_SQL)) polls.push(traceId);
    expect(polls).toEqual([]);
  });

  it('the same session once the replica has replayed the write: pgrr.route to r1 (caught-up) → pg SELECT on r1', async () => {
    const [r1] = cluster.replicas;
    await r1!.resumeReplay();
    await r1!.waitForReplay();
    await expect.poll(async () => (await topology()).find((n) => n.name === 'r1')?.lagBytes, { timeout: 10_000 }).toBe(0);
    const read = await call(`/notes/${noteId}`);
    expect(read.json).toEqual({ id: noteId, body: 'hello' });
    const spans = await traceOf(read.traceId);
    // The session leaves the primary: its floor is read now. That read's span may start just
    // before or just after the route span (siblings, ordered by start time): either order.
    const cover = `    pg.query:SELECT postgres port=${cluster.primary.port} ← the primary's position`;
    const routed = ['    pgrr.route node=r1 reason=caught-up fallback=false', `      pg.query:SELECT postgres port=${r1!.port}`];
    const head = [`GET /notes/:id (server)`, '  middleware - jsonParser', '  middleware - consistencyMiddleware'];
    const tree = (...handler: string[]) =>
      [...head, '    pgrr.request source=cookie store=hit', '  request handler', ...handler].join('\n');
    expect([tree(cover, ...routed), tree(...routed, cover)]).toContain(userTree(spans));
    const [span] = route(spans);
    expect(span!.attributes).toMatchObject({
      'pgrr.node.role': 'replica',
      'server.address': '127.0.0.1',
      'server.port': r1!.port,
    });
    // The floor: at least what the session observed on the primary; r1 has replayed it.
    const lsn = (key: string) => parseLsn(String(span!.attributes[key]));
    expect(lsn('pgrr.floor_lsn')).toBeGreaterThanOrEqual(parseLsn(floor));
    expect(lsn('pgrr.replica.replay_lsn')).toBeGreaterThanOrEqual(lsn('pgrr.floor_lsn'));
  });

  it('metrics from the same SDK: pgrr.routing.decisions by role and reason', async () => {
    const decisions = (role: string, reason: string) =>
      Math.max(
        0,
        ...receiver.points
          .filter(
            (p) =>
              p.metric === 'pgrr.routing.decisions' && p.attributes['pgrr.node.role'] === role && p.attributes['pgrr.reason'] === reason,
          )
          .map((p) => p.value),
      );
    await expect.poll(() => decisions('replica', 'caught-up'), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    expect(decisions('primary', 'replica-behind')).toBeGreaterThanOrEqual(1);
    expect(decisions('primary', 'not-a-read')).toBeGreaterThanOrEqual(1);
    expect(receiver.points.some((p) => p.metric === 'pgrr.replica.lag.bytes' && p.attributes['pgrr.node'] === 'r1')).toBe(true);
  });

  it('stops on SIGTERM (the SDK flushes, then exits)', async () => {
    await stopApp(app);
    expect(app.process.exitCode).toBe(0);
  });

  it('without the register() line (ESM loader hook), the same app has no Express spans', async () => {
    const documented = await fixture('instrumentation.mjs');
    const withoutHook = documented.replace(/^register\(.*\n/m, '');
    expect(withoutHook).not.toBe(documented);
    await writeFiles(appDir, { 'instrumentation-without-hook.mjs': withoutHook });
    app = await startApp(appDir, ['--import', './instrumentation-without-hook.mjs', 'app.mjs'], appEnv());
    const write = await call('/notes', { body: 'unhooked' });
    const spans = await traceOf(write.traceId);
    expect(spans.filter((s) => s.attributes['express.type'] !== undefined)).toEqual([]);
    expect(spans.find((s) => s.kind === SERVER)!.name).toBe('POST'); // no route: Express was not patched
    expect(spans.some((s) => s.name === 'pg.query:INSERT postgres')).toBe(true);
    await stopApp(app);
  });
});
