// npm run demo: the follow-button demo on a local primary + 2 replicas (+ Redis), or on an existing
// deployment given by PRIMARY_URL, REPLICA_URLS (comma-separated) and REDIS_URL.
import { startDemo } from './server.js';

const demo = await startDemo({ port: Number(process.env.PORT ?? 3000) });
console.log(`pg-replica-router demo: ${demo.url}`);
console.log(
  demo.cluster
    ? 'Running its own primary, 2 replicas and Redis (if installed). Ctrl-C stops and removes them.'
    : 'Using the deployment given in PRIMARY_URL / REPLICA_URLS / REDIS_URL.',
);
const stop = async () => {
  await demo.close();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
