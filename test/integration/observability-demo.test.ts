// `npm run demo` with OTEL_EXPORTER_OTLP_ENDPOINT set (examples/demo/otel.ts): the demo, in its
// own process on an existing deployment (a cluster, as the app role), exports its traces by
// OTLP/HTTP to a receiver on loopback, and the page's routing log is still fed.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type Cluster } from 'pg-replica-router/testing';
import { startApp, stopApp, type AppProcess } from '../fixtures/otel-app/app-process.js';
import { SPAN_KIND, startReceiver, traceTree, type Receiver } from '../fixtures/otel-app/receiver.js';

let cluster: Cluster;
let receiver: Receiver;
let demo: AppProcess;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 1, appRole: true });
  receiver = await startReceiver();
  demo = await startApp(fileURLToPath(new URL('../../', import.meta.url)), ['--import', 'tsx', 'examples/demo/main.ts'], {
    PORT: '0',
    PRIMARY_URL: cluster.primary.appConnectionString!,
    REPLICA_URLS: cluster.replicas.map((r) => r.appConnectionString!).join(','),
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '100', // batches every 100 ms instead of 5 s
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', // NodeSDK's metric exporter: JSON the receiver reads
  });
});

afterAll(async () => {
  await stopApp(demo);
  await receiver?.close();
  await cluster?.stop();
});

/** A call of the demo's API as the page makes it, in a trace of its own. */
async function demoCall(path: string, body?: unknown): Promise<string> {
  const traceId = randomBytes(16).toString('hex');
  const res = await fetch(`${demo.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      'content-type': 'application/json',
      'x-demo-user': 'ada',
      traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(res.ok, `${path}: ${res.status}; demo stderr:\n${demo.stderr()}`).toBe(true);
  await res.arrayBuffer();
  return traceId;
}

const status = async () =>
  (await (await fetch(`${demo.url}/control/status`)).json()) as {
    instances: Array<{ nodes: Array<{ status: string }> }>;
    decisions: Array<{ node: string; reason: string; session?: string }>;
  };

it('exports the API requests by OTLP/HTTP: front → instance → pgrr.request → pgrr.route → pg; the page still gets its log', async () => {
  await expect
    .poll(async () => (await status()).instances.every((i) => i.nodes.every((n) => n.status === 'up')), { timeout: 15_000 })
    .toBe(true);
  const spans = await receiver.trace(await demoCall('/api/follow', { target: 'grace' }), 2); // the front's and the instance's
  const routes = new Set(spans.filter((s) => s.name === 'pgrr.route').map((s) => s.spanId));
  const tree = traceTree(spans, (s) => {
    const a = s.attributes;
    if (s.kind === SPAN_KIND.server) return `${s.name} (server) ${a['url.path']}`;
    if (s.kind === SPAN_KIND.client && a['http.request.method'] !== undefined) return `${s.name} (client)`;
    if (s.name === 'pgrr.request') return 'pgrr.request';
    if (routes.has(s.spanId)) return `pgrr.route node=${a['pgrr.node']} reason=${a['pgrr.reason']}`;
    if (s.name.startsWith('pg.query') && s.parentSpanId && routes.has(s.parentSpanId)) return `${s.name} port=${a['server.port']}`;
    return undefined;
  });
  expect(tree).toBe(
    [
      'POST (server) /api/follow', // the front
      '  POST (client)', // forwarding to an instance
      '    POST (server) /api/follow',
      '      pgrr.request',
      '        pgrr.route node=primary reason=not-a-read',
      `          pg.query:INSERT postgres port=${cluster.primary.port}`,
    ].join('\n'),
  );
  // The page's log, one of the SDK's span processors, has the decision with its session.
  expect((await status()).decisions.some((d) => d.reason === 'not-a-read' && /^[0-9a-f]{16}$/.test(d.session ?? ''))).toBe(true);
  expect(receiver.spans.some((s) => String(s.attributes['url.path']).startsWith('/control/'))).toBe(false); // the page's polling is not traced
});

it('stops on SIGTERM, the SDK shut down', async () => {
  await stopApp(demo);
  expect(demo.process.exitCode).toBe(0);
});
