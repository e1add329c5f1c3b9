// Router instances in separate OS processes (test/fixtures/drill-instance.ts), for the
// multi-process fault drill: start them, ask them for their view of the topology, stop them.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { PoolConfig } from 'pg';

const FIXTURE = fileURLToPath(new URL('../fixtures/drill-instance.ts', import.meta.url));

/** What one instance runs with (passed to the fixture as JSON in `DRILL_INSTANCE`). */
export interface InstanceConfig {
  /** The service it belongs to (`A`, `B`): instances of one service share a config. */
  service: string;
  primary: PoolConfig & { connectionString: string };
  replicas: Array<PoolConfig & { name: string; connectionString: string }>;
  redisUrl: string;
  secret: string;
  /** The router's default level (`session` when absent). */
  consistency?: string;
}

/** What the fixture's `GET /__drill/topology` answers. */
export interface InstanceTopology {
  service: string;
  nodes: Array<{ name: string; role: 'primary' | 'replica'; status: string; lagBytes: number | null }>;
  /** The router's `topology().store` (breaker state and counts). */
  store: { state: string; opened: number; errors: number; timeouts: number; shortCircuits: number; [count: string]: number | string };
  pool: { totalCount: number; idleCount: number; waitingCount: number };
}

export interface Instance {
  readonly name: string;
  readonly service: string;
  /** `http://127.0.0.1:<port>` of its workload app. */
  readonly url: string;
  readonly pid: number;
  topology(): Promise<InstanceTopology>;
  /** What it wrote to stderr so far (for failure messages). */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited. */
  stop(): Promise<void>;
}

/** Starts one instance; resolves once it listens. */
export async function startInstance(name: string, config: InstanceConfig, timeoutMs = 60_000): Promise<Instance> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    stdio: ['pipe', 'pipe', 'pipe'], // stdin: the instance exits when it ends (see the fixture)
    env: { ...process.env, DRILL_INSTANCE: JSON.stringify(config) },
  });
  let err = '';
  child.stderr!.on('data', (chunk: Buffer) => (err = (err + chunk.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`instance ${name} did not start in ${timeoutMs} ms: ${err}`)), timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`instance ${name} exited before listening: ${err}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    name,
    service: config.service,
    url,
    pid: child.pid!,
    async topology() {
      const res = await fetch(`${url}/__drill/topology`);
      return (await res.json()) as InstanceTopology;
    },
    stderr: () => err,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until every instance sees the primary and every replica of its own list up and caught up
 * (what "back in rotation" means for each service).
 */
export async function waitForRotation(instances: readonly Instance[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const views = await Promise.all(instances.map((i) => i.topology()));
    const ready = views.every((v) => v.nodes.every((n) => n.status === 'up' && (n.role === 'primary' || (n.lagBytes ?? 1) < 1_000_000)));
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`instances not back in rotation: ${JSON.stringify(views)}`);
    await sleep(50);
  }
}

/** Waits until no instance has a connection checked out or a request waiting for one. */
export async function waitForIdleInstances(instances: readonly Instance[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const views = await Promise.all(instances.map((i) => i.topology()));
    if (views.every(({ pool }) => pool.totalCount === pool.idleCount && pool.waitingCount === 0)) return;
    if (Date.now() > deadline) throw new Error(`pools not idle: ${JSON.stringify(views.map((v) => v.pool))}`);
    await sleep(20);
  }
}

/** Waits until every instance's store breaker is closed again. */
export async function waitForStore(instances: readonly Instance[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const views = await Promise.all(instances.map((i) => i.topology()));
    if (views.every((v) => v.store.state === 'closed')) return;
    if (Date.now() > deadline) throw new Error(`store breakers not closed: ${JSON.stringify(views.map((v) => v.store))}`);
    await sleep(50);
  }
}

/** Per instance (by URL): store calls that timed out, failed or were not made, so far. */
export async function storeTrouble(instances: readonly Instance[]): Promise<Map<string, number>> {
  const views = await Promise.all(instances.map(async (i) => [i.url, await i.topology()] as const));
  return new Map(views.map(([url, v]) => [url, v.store.timeouts + v.store.errors + v.store.shortCircuits]));
}
