import type { Job, JobsOptions, Processor, Queue } from 'bullmq';
import { ErrorCodes, ReplicaRouterError } from '../../lib/errors.js';
import type { Router } from '../../lib/router.js';

/**
 * The field of a job's data that carries the enqueuing session's consistency token. Visible in
 * the job's data (BullMQ's documented carrier), removed before your processor sees the job.
 */
export const TOKEN_FIELD = 'pgReplicaRouterToken';

type JobData = Record<string, unknown>;

/**
 * `queue` whose `add()` and `addBulk()` put the current session's token (everything it wrote or
 * read so far: `router.currentToken()`) into each job's data, so that a worker running the job
 * through {@link consistentProcessor} never reads older data than the request that enqueued it —
 * in any process, with the Redis store or with tokens alone. Needs `tokenSecret` in the router's
 * options (the workers' routers use the same secret). Every other member is the queue's own.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { Queue } from 'bullmq';
 * import type { Router } from 'pg-replica-router';
 * import { consistentQueue } from 'pg-replica-router/bullmq';
 *
 * declare const router: Router; // with tokenSecret
 * declare const app: express.Express; // with app.use(express.json()) and app.use(consistency(router))
 *
 * const emails = consistentQueue(router, new Queue('emails', { connection: { host: '127.0.0.1', port: 6379 } }));
 * app.post('/signup', async (req, res) => {
 *   await router.query('insert into users (email) values ($1)', [req.body.email]);
 *   await emails.add('welcome', { email: req.body.email }); // the worker will see the new user
 *   res.sendStatus(201);
 * });
 * ```
 */
export function consistentQueue<Q extends Pick<Queue, 'add' | 'addBulk'>>(router: Router, queue: Q): Q {
  const add = (name: string, data: unknown, opts?: JobsOptions) =>
    withToken(router, data).then((carried) => queue.add(name, carried, opts));
  const addBulk = async (jobs: Array<{ name: string; data: unknown; opts?: JobsOptions }>) => {
    const token = await router.currentToken(); // one token for the whole batch: the same session
    return queue.addBulk(jobs.map((job) => ({ ...job, data: carrying(job.data, token) })) as Parameters<Q['addBulk']>[0]);
  };
  return new Proxy(queue, {
    get(target, property, receiver) {
      if (property === 'add') return add;
      if (property === 'addBulk') return addBulk;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * A BullMQ processor that runs each job inside the token its data carries (see
 * {@link consistentQueue}): its reads observe at least what the enqueuing session had written
 * or read. The token is taken out of `job.data` first. A job without one runs as it is; a bad
 * token is ignored (counted in the router's `tokensRejected`), never thrown.
 *
 * @example
 * ```ts
 * import { Worker } from 'bullmq';
 * import type { Router } from 'pg-replica-router';
 * import { consistentProcessor } from 'pg-replica-router/bullmq';
 *
 * declare const router: Router; // with the same tokenSecret as the web service's
 * declare function sendWelcome(user: { email: string }): Promise<void>;
 *
 * const processor = consistentProcessor<{ email: string }>(router, async (job) => {
 *   const { rows } = await router.query<{ email: string }>('select email from users where email = $1', [job.data.email]);
 *   for (const user of rows) await sendWelcome(user); // the new user is there
 * });
 * new Worker('emails', processor, { connection: { host: '127.0.0.1', port: 6379 } });
 * ```
 */
export function consistentProcessor<T = JobData, R = unknown, N extends string = string>(
  router: Router,
  processor: Processor<T, R, N>,
): Processor<T, R, N> {
  return (job: Job<T, R, N>, lockToken?: string, signal?: AbortSignal) => {
    const data = job.data as unknown;
    const token = isObject(data) ? data[TOKEN_FIELD] : undefined;
    if (token === undefined) return processor(job, lockToken, signal);
    delete (data as JobData)[TOKEN_FIELD];
    // Not a string (a job made by other code): judged as a token all the same, ignored and counted.
    return router.withToken(token as string, () => processor(job, lockToken, signal));
  };
}

async function withToken(router: Router, data: unknown): Promise<JobData> {
  return carrying(data, await router.currentToken());
}

function carrying(data: unknown, token: string): JobData {
  if (data !== undefined && !isObject(data)) {
    throw new ReplicaRouterError(
      ErrorCodes.INVALID_OPTION,
      `consistentQueue: job data must be an object to carry the token, got ${Array.isArray(data) ? 'an array' : typeof data}`,
    );
  }
  return { ...(data ?? {}), [TOKEN_FIELD]: token };
}

function isObject(value: unknown): value is JobData {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
