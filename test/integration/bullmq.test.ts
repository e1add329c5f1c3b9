// pg-replica-router/bullmq: a job never reads older data than the request that enqueued it. The
// web service (this process) enqueues inside a session with consistentQueue; the worker service
// (test/fixtures/bullmq-worker.ts, another OS process with its own router and replica names, no
// shared position store: tokens alone) runs it through consistentProcessor. With every replica
// paused, the job reads the new row; the same job enqueued without the token reads a replica stale.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import { consistentQueue, TOKEN_FIELD } from 'pg-replica-router/bullmq';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, routerFor, settle, startTestCluster, urlAs } from '../helpers/cluster.js';

const SECRET = 'a bullmq test secret, 16+ bytes';
let cluster: Cluster;
let web: Router;
let worker: ChildProcess;
let connection: { host: string; port: number };
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 2, redis: true });
  await cluster.primary.query('create table users (id serial primary key, email text)');
  await cluster.waitForReplicas();
  connection = { host: cluster.redis!.host, port: cluster.redis!.port };
  web = routerFor(cluster, { tokenSecret: SECRET });
  await settle(web, cluster);
  worker = fork(fileURLToPath(new URL('../fixtures/bullmq-worker.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    env: {
      ...process.env,
      PGRR_NODES: JSON.stringify({
        primary: urlAs(cluster.primary),
        replicas: cluster.replicas.map((r, i) => ({ name: `jobs-${i + 1}`, connectionString: urlAs(r) })),
      }),
      PGRR_REDIS_URL: cluster.redis!.url,
      PGRR_SECRET: SECRET,
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('exit', (code) => reject(new Error(`the worker exited (${code})`)));
  });
}, 120_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  if (worker?.connected) {
    worker.send('stop');
    await new Promise((resolve) => worker.once('exit', resolve));
  }
  await web?.close();
  await cluster?.stop();
});

function queue(name: string): { queue: Queue; events: QueueEvents } {
  const q = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  closers.push(
    () => q.close(),
    () => events.close(),
  );
  return { queue: q, events };
}

type Result = { n: number; port: number; dataKeys: string[] };

describe('BullMQ jobs carry the enqueuing session', () => {
  it("a job reads the enqueuing request's write in a worker process that shares no store; enqueued without the token it reads stale", async () => {
    const emails = queue('emails');
    const naive = queue('emails-naive');
    await Promise.all([emails.events.waitUntilReady(), naive.events.waitUntilReady()]);
    const consistent = consistentQueue(web, emails.queue);
    for (const replica of cluster.replicas) await replica.pauseReplay();
    try {
      const [job, plainJob] = await web.withSession('ann', async () => {
        await web.query("insert into users (email) values ('ann@example.com')");
        return [
          await consistent.add('welcome', { email: 'ann@example.com' }),
          await naive.queue.add('welcome', { email: 'ann@example.com' }), // the same request, no token
        ];
      });
      expect(Object.keys(job.data)).toEqual(['email', TOKEN_FIELD]);
      const read = (await job.waitUntilFinished(emails.events, 20_000)) as Result;
      expect(read.n).toBe(1);
      expect(nodeByPort(cluster, read.port)).toBe('primary'); // every replica is behind the token
      expect(read.dataKeys).toEqual(['email']); // the processor saw the job's own data
      const stale = (await plainJob.waitUntilFinished(naive.events, 20_000)) as Result;
      expect(stale.n).toBe(0);
      expect(nodeByPort(cluster, stale.port)).not.toBe('primary');
    } finally {
      for (const replica of cluster.replicas) await replica.resumeReplay();
    }
  });

  it('addBulk carries one token for the batch; once the replicas catch up the jobs read there', async () => {
    const emails = queue('emails');
    await emails.events.waitUntilReady();
    const consistent = consistentQueue(web, emails.queue);
    const jobs = await web.withSession('bob', async () => {
      await web.query("insert into users (email) values ('bob@example.com')");
      return consistent.addBulk([1, 2, 3].map(() => ({ name: 'welcome', data: { email: 'bob@example.com' } })));
    });
    const reads = (await Promise.all(jobs.map((j) => j.waitUntilFinished(emails.events, 20_000)))) as Result[];
    expect(reads.map((r) => r.n)).toEqual([1, 1, 1]);
    expect(new Set(jobs.map((j) => j.data[TOKEN_FIELD])).size).toBe(1);
  });

  it('data that cannot carry a token is refused with a stable code', async () => {
    const consistent = consistentQueue(web, queue('emails').queue);
    await expect(consistent.add('welcome', 'a string' as never)).rejects.toMatchObject({ code: 'ERR_PGRR_INVALID_OPTION' });
  });
});
