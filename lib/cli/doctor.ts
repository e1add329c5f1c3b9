import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { formatReport } from '../doctor/index.js';
import { UsageError, wholeNumber, type Command } from './command.js';
import type { RouterOptions } from '../options.js';
import { createRouter } from '../router.js';
import { redisStore, type RedisClientLike } from '../stores/redis.js';

const SUMMARY = `Checks every node, the store and the token secret of a router configuration against the
real servers, and says what routing will do and why (docs/doctor.md). Exits 1 when it finds a
problem (to gate a deploy), 2 on a usage error.
  --config FILE           an ES module whose default export is the createRouter() options
                          (or a function returning them)
  --primary URL           the primary's connection string
  --replica [NAME=]URL    a replica (repeat for each); names default to replica1, replica2, …
  --redis URL             check a Redis store at URL (needs ioredis)
  --token-secret-env VAR  read the token secret from environment variable VAR
  --connections N         simultaneous connections per node, to find load balancers (default 4)
  --json                  print the report as JSON`;

const usage = (message: string) => new UsageError(`doctor: ${message}`);

/** The router options the command line names: a config module, or URLs. */
async function optionsFrom(
  values: Record<string, string | boolean | string[] | undefined>,
): Promise<{ options: RouterOptions; close: () => void }> {
  if (typeof values.config === 'string') {
    const file = isAbsolute(values.config) ? values.config : resolve(process.cwd(), values.config);
    const loaded = (await import(pathToFileURL(file).href)) as { default?: unknown };
    const exported = typeof loaded.default === 'function' ? await (loaded.default as () => unknown)() : loaded.default;
    if (exported === null || typeof exported !== 'object') throw usage(`${values.config} has no default export of router options`);
    return { options: exported as RouterOptions, close: () => {} };
  }
  if (typeof values.primary !== 'string') throw usage('give --config FILE or --primary URL');
  const replicas = ((values.replica as string[] | undefined) ?? []).map((spec, i) => {
    const match = /^([A-Za-z0-9_.:-]{1,64})=(.+)$/.exec(spec);
    return match && !/^[a-z]+:\/\//.test(spec)
      ? { name: match[1]!, connectionString: match[2]! }
      : { name: `replica${i + 1}`, connectionString: spec };
  });
  const options: RouterOptions = { primary: { connectionString: values.primary }, replicas };
  const secretVar = values['token-secret-env'];
  if (typeof secretVar === 'string') {
    const secret = process.env[secretVar];
    if (!secret) throw usage(`environment variable ${secretVar} is not set`);
    options.tokenSecret = secret;
  }
  let close = () => {};
  if (typeof values.redis === 'string') {
    let Redis: typeof import('ioredis').Redis;
    try {
      ({ Redis } = await import('ioredis'));
    } catch {
      throw usage('--redis needs the ioredis package (npm install ioredis)');
    }
    const client = new Redis(values.redis, { maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false });
    client.on('error', () => {}); // the doctor reports an unreachable Redis itself
    options.store = redisStore(client as unknown as RedisClientLike);
    close = () => client.disconnect();
  }
  return { options, close };
}

/** `pg-replica-router doctor …`: prints the report; exits 1 on a problem. */
export const doctor: Command = {
  name: 'doctor',
  synopsis: '(--config FILE | --primary URL [--replica [NAME=]URL]... [--redis URL] [--token-secret-env VAR]) [--connections N] [--json]',
  summary: SUMMARY,

  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        config: { type: 'string' },
        primary: { type: 'string' },
        replica: { type: 'string', multiple: true },
        redis: { type: 'string' },
        'token-secret-env': { type: 'string' },
        connections: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const connections = wholeNumber('--connections', values.connections);
    if (connections !== undefined && !(connections >= 1 && connections <= 32)) throw usage('--connections must be from 1 to 32');
    const { options, close } = await optionsFrom(values);
    try {
      const router = createRouter({ ...options, logger: false, debug: false });
      try {
        const report = await router.doctor({ connections });
        console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
        return report.ok ? 0 : 1;
      } finally {
        await router.close();
      }
    } finally {
      close();
    }
  },
};
