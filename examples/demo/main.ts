// npm run demo: the follow-button demo on a local primary + 2 replicas (+ Redis), or on an existing
// deployment given by PRIMARY_URL, REPLICA_URLS (comma-separated) and REDIS_URL.
import { startTracing } from './otel.js';

const tracing = startTracing(process.env); // with OTEL_EXPORTER_OTLP_ENDPOINT: traces go out by OTLP/HTTP too
const { startDemo } = await import('./server.js'); // after the SDK has started: pg is patched as it loads
const demo = await startDemo({ port: Number(process.env.PORT ?? 3000), decisions: tracing?.decisions });
console.log(`pg-replica-router demo: ${demo.url}`);
console.log(
  demo.cluster
    ? 'Running its own primary, 2 replicas and Redis (if installed). Ctrl-C stops and removes them.'
    : 'Using the deployment given in PRIMARY_URL / REPLICA_URLS / REDIS_URL.',
);
const stop = async () => {
  await demo.close();
  await tracing?.shutdown();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
