import { createRequire } from 'node:module';

type OtelApi = typeof import('@opentelemetry/api');

let loaded: OtelApi | null | undefined;

/** `@opentelemetry/api` if the application has it installed (an optional peer), else null. */
export function otelApi(): OtelApi | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('@opentelemetry/api') as OtelApi;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/** The baggage entry that carries a consistency token across services. */
export const BAGGAGE_KEY = 'pgrr.token';
