// npm run bench: routing overhead and round trips, measured against a real cluster.
// Not a test: it prints numbers (and writes docs/bench-results.json) for docs/performance.md.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createRouter, redisStore } from '../../lib/index.js';
import { startCluster } from '../../lib/testing/index.js';
import { statementBlocks } from './cpu-blocks.js';
import { median } from './rounds.js';
import { routingWorkMicros, routingWorkPerStatement } from './routing-work.js';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 20000);
const ROUNDS = 1;

const cluster = await startCluster({ replicas: 1, redis: true });
try {
  const replica = cluster.replicas[0]!;
  const router = createRouter({
    primary: { connectionString: cluster.primary.connectionString, max: 4 },
    replicas: [{ name: replica.name, connectionString: replica.connectionString, max: 4 }],
  });
  await router.query('create table bench (id int primary key, payload text)');
  await router.query("insert into bench select g, repeat('x', 100) from generate_series(1, 1000) g");
  await router.query('select 1'); // the process session's floor now covers the set-up
  await cluster.waitForReplicas();
  await new Promise((resolve) => setTimeout(resolve, 1500)); // the monitor sees the replica caught up

  const raw = new pg.Pool({ connectionString: replica.connectionString, max: 4 });
  const sql = 'select id, payload from bench where id = $1';
  for (let i = 0; i < 500; i++) {
    await raw.query(sql, [i + 1]);
    await router.query(sql, [i + 1]);
  }

  // Alternate raw and routed queries one by one, so drift on the machine hits both alike.
  const rawSamples: number[] = [];
  const routedSamples: number[] = [];
  const before = router.topology();
  const total = ITERATIONS * ROUNDS;
  for (let i = 0; i < total; i++) {
    const id = (i % 1000) + 1;
    const first = i % 2 === 0;
    for (const side of first ? ['raw', 'routed'] : ['routed', 'raw']) {
      const started = process.hrtime.bigint();
      if (side === 'raw') await raw.query(sql, [id]);
      else await router.query(sql, [id]);
      (side === 'raw' ? rawSamples : routedSamples).push(Number(process.hrtime.bigint() - started) / 1000);
    }
  }
  const after = router.topology();
  const servedByReplica =
    after.nodes.find((n) => n.name === replica.name)!.served - before.nodes.find((n) => n.name === replica.name)!.served;

  // Round trips per request kind.
  const cost = async (fn: () => Promise<unknown>) => {
    const b = router.topology();
    const statements = (t: typeof b) => t.nodes.reduce((s, n) => s + n.served, 0);
    await fn();
    const a = router.topology();
    return {
      statements: statements(a) - statements(b),
      positionReads: a.counters.positionReads - b.counters.positionReads,
      liveChecks: a.counters.liveChecks - b.counters.liveChecks,
      storeReads: a.counters.storeReads - b.counters.storeReads,
      storeWrites: a.counters.storeWrites - b.counters.storeWrites,
    };
  };
  // Their first requests: a new session is owed the primary's position (one sample) and records its node.
  await router.withSession('bench-reader', () => router.query(sql, [1]));
  await router.withSession('bench-writer', () => router.query(sql, [1]));
  const readRequest = await cost(() =>
    router.withSession('bench-reader', async () => {
      await router.query(sql, [1]);
      await router.query(sql, [2]);
    }),
  );
  const writeRequest = await cost(() =>
    router.withSession('bench-writer', async () => {
      await router.query(sql, [1]);
      await router.query("update bench set payload = 'y' where id = 1");
      await router.query("update bench set payload = 'z' where id = 2");
      await router.query(sql, [1]);
    }),
  );

  // Sessions with the Redis store vs the same operations with no session, interleaved.
  const redis = new Redis(cluster.redis!.url);
  const sessions = createRouter({
    primary: { connectionString: cluster.primary.connectionString, max: 4 },
    replicas: [{ name: replica.name, connectionString: replica.connectionString, max: 4 }],
    store: redisStore(redis),
  });
  // Baselines with no session: one router only reads, another only writes (so its unscoped
  // writes never make it read the primary's position).
  const plainConfig = {
    primary: { connectionString: cluster.primary.connectionString, max: 4 },
    replicas: [{ name: replica.name, connectionString: replica.connectionString, max: 4 }],
  };
  const plainReader = createRouter(plainConfig);
  const plainWriter = createRouter(plainConfig);
  await Promise.all([sessions.query('select 1'), plainReader.query('select 1'), plainWriter.query('select 1')]);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const SESSION_ITERATIONS = Math.max(200, Math.round(ITERATIONS / 10));
  for (let i = 0; i < 50; i++) await sessions.withSession(`warm:${i}`, () => sessions.query(sql, [1]));
  const timed = async (fn: () => Promise<unknown>) => {
    const started = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - started) / 1000;
  };
  const scopeSamples = {
    readNoSession: [] as number[],
    readSession: [] as number[],
    writeNoSession: [] as number[],
    writeSession: [] as number[],
  };
  type Counters = ReturnType<typeof sessions.topology>['counters'];
  const perScope = {
    readSession: { storeReads: 0, storeWrites: 0, positionReads: 0 },
    writeSession: { storeReads: 0, storeWrites: 0, positionReads: 0 },
  };
  const tally = (kind: keyof typeof perScope, before: Counters) => {
    const after = sessions.topology().counters;
    perScope[kind].storeReads += after.storeReads - before.storeReads;
    perScope[kind].storeWrites += after.storeWrites - before.storeWrites;
    perScope[kind].positionReads += after.positionReads - before.positionReads;
  };
  for (let i = 0; i < SESSION_ITERATIONS; i++) {
    const key = `bench:${i % 50}`;
    scopeSamples.readNoSession.push(await timed(() => plainReader.query(sql, [1])));
    let before = sessions.topology().counters;
    scopeSamples.readSession.push(await timed(() => sessions.withSession(`warm:${i % 50}`, () => sessions.query(sql, [1]))));
    tally('readSession', before);
    scopeSamples.writeNoSession.push(
      await timed(() => plainWriter.query("update bench set payload = 'w' where id = $1", [(i % 1000) + 1])),
    );
    before = sessions.topology().counters;
    scopeSamples.writeSession.push(
      await timed(() => sessions.withSession(key, () => sessions.query("update bench set payload = 's' where id = $1", [(i % 1000) + 1]))),
    );
    tally('writeSession', before);
  }
  await Promise.all([sessions.close(), plainReader.close(), plainWriter.close()]);
  redis.disconnect();

  // CPU per statement in blocks on one connection per variant, before any OpenTelemetry SDK is
  // registered below (as users without one run; with one, every statement records a span).
  const blocks = await statementBlocks(cluster.primary.connectionString, replica, sql);

  // Telemetry: the same reads through a router with telemetry off and one with it on, first with
  // no OpenTelemetry SDK registered, then with one (traces and metrics, spans discarded).
  const telemetryConfig = (telemetry: boolean) => ({
    primary: { connectionString: cluster.primary.connectionString, max: 4 },
    replicas: [{ name: replica.name, connectionString: replica.connectionString, max: 4 }],
    telemetry,
  });
  const alternate = async (a: () => Promise<unknown>, b: () => Promise<unknown>, n: number) => {
    const samples: [number[], number[]] = [[], []];
    for (let i = 0; i < n; i++) {
      for (const side of i % 2 === 0 ? [0, 1] : [1, 0]) {
        const started = process.hrtime.bigint();
        await (side === 0 ? a() : b());
        samples[side]!.push(Number(process.hrtime.bigint() - started) / 1000);
      }
    }
    return { a: median(samples[0]), b: median(samples[1]) };
  };
  const off = createRouter(telemetryConfig(false));
  const onNoSdk = createRouter(telemetryConfig(true));
  await Promise.all([off.query('select 1'), onNoSdk.query('select 1')]);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const TELEMETRY_ITERATIONS = ITERATIONS;
  const noSdk = await alternate(
    () => off.query(sql, [1]),
    () => onNoSdk.query(sql, [1]),
    TELEMETRY_ITERATIONS,
  );
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor({ export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} })],
    }),
  );
  metrics.setGlobalMeterProvider(new MeterProvider());
  const onSdk = createRouter(telemetryConfig(true));
  await onSdk.query('select 1');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const withSdk = await alternate(
    () => off.query(sql, [1]),
    () => onSdk.query(sql, [1]),
    TELEMETRY_ITERATIONS,
  );
  await Promise.all([off.close(), onNoSdk.close(), onSdk.close()]);

  const raw50 = median(rawSamples);
  const routed50 = median(routedSamples);
  // The same pairs cut into 10 blocks: the spread of the ratio shows how much is machine noise.
  const blockRatios = Array.from({ length: 10 }, (_, b) => {
    const size = Math.floor(rawSamples.length / 10);
    return median(routedSamples.slice(b * size, (b + 1) * size)) / median(rawSamples.slice(b * size, (b + 1) * size));
  }).sort((x, y) => x - y);
  const results = {
    date: new Date().toISOString(),
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    postgres: (await raw.query('show server_version')).rows[0].server_version,
    iterations: ITERATIONS * ROUNDS,
    medianMicros: { rawPool: Math.round(raw50), router: Math.round(routed50) },
    ratio: Number((routed50 / raw50).toFixed(3)),
    blockRatios: {
      min: Number(blockRatios[0]!.toFixed(3)),
      median: Number(median(blockRatios).toFixed(3)),
      max: Number(blockRatios[9]!.toFixed(3)),
    },
    routedReadsOnReplica: `${servedByReplica}/${ITERATIONS * ROUNDS}`,
    /** Blocks of sequential reads on one connection per variant: CPU and wall µs per statement, and CPU ratios to the raw pool. */
    blocks: {
      figures: blocks,
      cpuRatio: Object.fromEntries(
        Object.entries(blocks).map(([k, v]) => [k, Number((v.cpuMicros / blocks.rawPool!.cpuMicros).toFixed(2))]),
      ),
    },
    roundTrips: { readRequest, writeRequest },
    routingWorkMicros: await routingWorkMicros(),
    routingWorkPerStatement: await routingWorkPerStatement(),
    telemetry: {
      iterations: TELEMETRY_ITERATIONS,
      noSdk: { offMicros: Math.round(noSdk.a), onMicros: Math.round(noSdk.b), ratio: Number((noSdk.b / noSdk.a).toFixed(3)) },
      withSdk: { offMicros: Math.round(withSdk.a), onMicros: Math.round(withSdk.b), ratio: Number((withSdk.b / withSdk.a).toFixed(3)) },
    },
    sessionsWithRedis: {
      iterations: SESSION_ITERATIONS,
      medianMicros: Object.fromEntries(Object.entries(scopeSamples).map(([k, v]) => [k, Math.round(median(v))])),
      perScope: Object.fromEntries(
        Object.entries(perScope).map(([kind, c]) => [
          kind,
          Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v / SESSION_ITERATIONS])),
        ]),
      ),
    },
  };
  console.log(JSON.stringify(results, null, 2));
  if (process.env.BENCH_WRITE)
    writeFileSync(new URL('../../docs/bench-results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
  await raw.end();
  await router.close();
} finally {
  await cluster.stop();
}
