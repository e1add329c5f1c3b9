// The router's own connections (the monitor's, one per node) take only the nodes' connection
// settings: the user's pool hooks and options run on the application's connections alone, and
// the monitor never keeps an idle process alive (pg-pool's allowExitOnIdle semantics).
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouter, type Router } from 'pg-replica-router';
import type { Cluster, NodeHandle } from 'pg-replica-router/testing';
import { startTestCluster, urlAs } from '../helpers/cluster.js';
import { monitorPoolConfig } from '../../lib/monitor-connection.js';

const MONITOR = 'pg-replica-router monitor';
let cluster: Cluster;
const routers: Router[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
});
afterAll(async () => {
  for (const router of routers) await router.close();
  await cluster?.stop();
});

/** The node's application-role URL, naming its connections `name` (pg merges it over the config). */
function named(node: NodeHandle, name: string): string {
  const url = new URL(urlAs(node));
  url.searchParams.set('application_name', name);
  return url.toString();
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const allUp = (router: Router) => router.topology().nodes.every((n) => n.status === 'up' && n.lsn !== undefined);

/** The backends named `name` on `node`: pid and start time. */
function backendsNamed(node: NodeHandle, name: string): Promise<Array<{ pid: number; started: string }>> {
  return node.query<{ pid: number; started: string }>(
    'select pid, backend_start::text as started from pg_stat_activity where application_name = $1 order by pid',
    [name],
  );
}

describe('monitorPoolConfig (no server)', () => {
  it('keeps where the server is and how to log in; drops pool options, hooks and session settings', () => {
    const password = () => 'secret';
    const stream = () => new PassThrough();
    const hook = () => {};
    const user = {
      connectionString: 'postgres://app@db/app?application_name=x',
      host: 'db',
      port: 5433,
      user: 'app',
      password,
      database: 'app',
      ssl: { rejectUnauthorized: false },
      options: '-c search_path=app',
      keepAlive: true,
      stream,
      onConnect: hook,
      verify: hook,
      log: hook,
      max: 50,
      min: 5,
      idleTimeoutMillis: 5,
      maxUses: 7,
      maxLifetimeSeconds: 9,
      allowExitOnIdle: false,
      Client: pg.Client,
      types: pg.types,
      application_name: 'my-app',
      statement_timeout: 0,
      query_timeout: 0,
      lock_timeout: 10,
      client_encoding: 'LATIN1',
    } as pg.PoolConfig;
    const config = monitorPoolConfig(user, 1000);
    const { Client, ...rest } = config;
    expect(rest).toEqual({
      connectionString: user.connectionString,
      host: 'db',
      port: 5433,
      user: 'app',
      password,
      database: 'app',
      ssl: { rejectUnauthorized: false },
      options: '-c search_path=app',
      keepAlive: true,
      stream,
      max: 1,
      idleTimeoutMillis: 0,
      allowExitOnIdle: true,
      connectionTimeoutMillis: 1000,
      query_timeout: 1000,
      application_name: MONITOR,
    });
    expect(Client).not.toBe(pg.Client);
    // A socket object is not taken (it can serve one connection: the application's).
    expect(monitorPoolConfig({ stream: new PassThrough() } as unknown as pg.PoolConfig, 1000)).not.toHaveProperty('stream');
  });
});

describe("the user's pool options and hooks", () => {
  it('run on application connections only, never on the monitor’s', async () => {
    const seen = { onConnect: [] as string[], verify: [] as string[], log: 0, clients: 0 };
    const nameOf = async (client: pg.ClientBase) =>
      (await client.query<{ name: string }>("select current_setting('application_name') as name")).rows[0]!.name;
    class CountingClient extends pg.Client {
      constructor(config?: pg.ClientConfig) {
        super(config);
        seen.clients++;
      }
    }
    const hooks: pg.PoolConfig = {
      onConnect: async (client) => void seen.onConnect.push(await nameOf(client)),
      verify: (client, done) => void nameOf(client as pg.ClientBase).then((name) => (seen.verify.push(name), done()), done),
      log: () => void seen.log++,
      maxLifetimeSeconds: 1,
      Client: CountingClient as unknown as pg.PoolConfig['Client'],
    };
    const router = createRouter({
      primary: { connectionString: named(cluster.primary, 'my-app'), ...hooks },
      replicas: [{ name: 'r1', connectionString: named(cluster.replicas[0]!, 'my-app'), ...hooks }],
      monitor: { intervalMs: 100 },
      logger: false,
    });
    routers.push(router);
    await until('the monitor to see every node', () => allUp(router));

    // The monitor polls, the application has sent nothing: no hook ran, no user Client was made.
    // (Soft: each of these is its own mechanism, and each failed before the monitor took only
    // connection settings.)
    const nodes = [cluster.primary, cluster.replicas[0]!];
    const before = await Promise.all(nodes.map((n) => backendsNamed(n, MONITOR)));
    expect.soft(before.map((b) => b.length)).toEqual([1, 1]); // named as the monitor, despite ?application_name=my-app
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // past maxLifetimeSeconds, ~15 polls
    expect.soft(allUp(router)).toBe(true);
    expect.soft(seen.onConnect).toEqual([]);
    expect.soft(seen.verify).toEqual([]);
    expect.soft(seen.log).toBe(0);
    expect.soft(seen.clients).toBe(0);
    // maxLifetimeSeconds is the application's: the monitor keeps its one connection.
    expect.soft(await Promise.all(nodes.map((n) => backendsNamed(n, MONITOR)))).toEqual(before);
    expect(seen).toEqual({ onConnect: [], verify: [], log: 0, clients: 0 });

    // The application's connections get every hook, with the user's application_name.
    await router.query('create table hooks (id int)');
    await router.query('insert into hooks values (1)');
    await until('a replica read', async () => {
      await router.query('select count(*) from hooks');
      return router.topology().nodes.find((n) => n.name === 'r1')!.served > 0;
    });
    expect(seen.onConnect.length).toBeGreaterThanOrEqual(2); // a connection to each node
    expect(new Set(seen.onConnect)).toEqual(new Set(['my-app']));
    expect(new Set(seen.verify)).toEqual(new Set(['my-app']));
    expect(seen.clients).toBe(seen.onConnect.length);
    expect(seen.log).toBeGreaterThan(0);
    for (const node of nodes) expect((await backendsNamed(node, 'my-app')).length).toBeGreaterThan(0);
  });

  it('a throwing onConnect fails application connections as in pg, and leaves the monitor working', async () => {
    const refuse = async () => {
      throw new Error('hook refused');
    };
    const plain = new pg.Pool({ connectionString: urlAs(cluster.primary), onConnect: refuse });
    await expect(plain.query('select 1')).rejects.toThrow('hook refused'); // pg's behaviour
    await plain.end();

    const router = createRouter({
      primary: { connectionString: urlAs(cluster.primary), onConnect: refuse },
      replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!), onConnect: refuse }],
      monitor: { intervalMs: 100 },
      logger: false,
    });
    routers.push(router);
    await until('the monitor to see every node', () => allUp(router));
    await expect(router.query('select 1')).rejects.toThrow('hook refused');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(router.topology().nodes.map((n) => [n.name, n.status])).toEqual([
      ['primary', 'up'],
      ['r1', 'up'],
    ]);
  });

  it('pg.Client.prototype.connect patched after the router was loaded (a test double, an agent) changes application connections only', async () => {
    const original = pg.Client.prototype.connect;
    const patched = new Error('patched connect refused');
    let calls = 0;
    pg.Client.prototype.connect = function (this: pg.Client, callback?: (err: Error) => void) {
      calls++;
      if (callback) return void setImmediate(() => callback(patched));
      return Promise.reject(patched);
    } as typeof original;
    try {
      const router = createRouter({
        primary: { connectionString: urlAs(cluster.primary) },
        replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!) }],
        monitor: { intervalMs: 100 },
        logger: false,
      });
      routers.push(router);
      await until('the monitor to see every node', () => allUp(router)); // its polls never met the patch
      await expect(router.pool.connect()).rejects.toBe(patched); // the application's connections do
      await expect(router.query('select 1')).rejects.toBe(patched);
      expect(calls).toBeGreaterThanOrEqual(2);
      expect(router.topology().nodes.every((n) => n.status === 'up')).toBe(true);
    } finally {
      pg.Client.prototype.connect = original;
    }
  });
});

/** Runs the fixture; resolves with its exit (or `exited: false` once killed after `limitMs`). */
function runApp(
  env: Record<string, string>,
  limitMs = 30_000,
): Promise<{ exited: boolean; code: number | null; out: unknown; idleMs: number; stderr: string }> {
  const fixture = fileURLToPath(new URL('../fixtures/exit-on-idle.ts', import.meta.url));
  const nodes = { primary: urlAs(cluster.primary), replicas: [{ name: 'r1', connectionString: urlAs(cluster.replicas[0]!) }] };
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, PGRR_NODES: JSON.stringify(nodes), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let doneAt: number | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (doneAt === undefined && stdout.includes('"done"')) doneAt = performance.now();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => {
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, limitMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop();
      resolve({
        exited: !killed,
        code,
        out: line ? (JSON.parse(line) as unknown) : undefined,
        idleMs: doneAt === undefined ? Number.NaN : performance.now() - doneAt,
        stderr,
      });
    });
  });
}

describe('a process that never calls close()', () => {
  it('exits by itself with allowExitOnIdle: true, as a plain pg.Pool does', async () => {
    const options = JSON.stringify({ allowExitOnIdle: true });
    const plain = await runApp({ PGRR_POOL: options, PGRR_PLAIN: '1' });
    expect(plain, plain.stderr).toMatchObject({ exited: true, code: 0, out: { done: true } });
    const routed = await runApp({ PGRR_POOL: options });
    expect(routed, routed.stderr).toMatchObject({ exited: true, code: 0, out: { done: true } });
    expect((routed.out as { replicaReads: number }).replicaReads).toBeGreaterThan(0);
    console.log(
      `allowExitOnIdle: plain pg.Pool exited ${plain.idleMs.toFixed(0)} ms after its last statement, the router ${routed.idleMs.toFixed(0)} ms`,
    );
  });

  it('with default options, exits once the application’s idle connections time out, as a plain pg.Pool does', async () => {
    // pg-pool keeps the process alive while idle connections wait for idleTimeoutMillis (default
    // 10 s; 1 s here), then ends them; the monitor's connection is never a reason to stay.
    const options = JSON.stringify({ idleTimeoutMillis: 1000 });
    const plain = await runApp({ PGRR_POOL: options, PGRR_PLAIN: '1' });
    expect(plain, plain.stderr).toMatchObject({ exited: true, code: 0, out: { done: true } });
    const routed = await runApp({ PGRR_POOL: options });
    expect(routed, routed.stderr).toMatchObject({ exited: true, code: 0, out: { done: true } });
    // Not before the idle connections were ended (their timers are referenced, as in pg).
    expect(plain.idleMs).toBeGreaterThanOrEqual(900);
    expect(routed.idleMs).toBeGreaterThanOrEqual(900);
    console.log(
      `idleTimeoutMillis 1000: plain pg.Pool exited ${plain.idleMs.toFixed(0)} ms after its last statement, the router ${routed.idleMs.toFixed(0)} ms`,
    );
  });
});
