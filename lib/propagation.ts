import { requestScopesOf } from './internal.js';
import { BAGGAGE_KEY, otelApi } from './otel.js';
import type { Router } from './router.js';

/** The header a consistency token travels in, unless configured otherwise. */
export const TOKEN_HEADER = 'x-consistency-token';

/**
 * Headers for an outgoing HTTP request (fetch, undici) carrying the current session's token, so
 * the service called reads at least what this request wrote and saw.
 *
 * @example
 * ```ts
 * import type { Router } from 'pg-replica-router';
 * import { tokenHeaders } from 'pg-replica-router/express';
 *
 * declare const router: Router;
 * declare const invoice: { orderId: number; total: string };
 *
 * const res = await fetch('http://billing/invoices', {
 *   method: 'POST',
 *   headers: await tokenHeaders(router, { 'content-type': 'application/json' }),
 *   body: JSON.stringify(invoice),
 * });
 * ```
 */
export async function tokenHeaders(router: Router, init?: ConstructorParameters<typeof Headers>[0], name = TOKEN_HEADER): Promise<Headers> {
  const headers = new Headers(init);
  headers.set(name, await router.currentToken());
  return headers;
}

/**
 * Runs `fn` with the current session's token in OpenTelemetry baggage (`pgrr.token`), so
 * instrumented HTTP clients propagate it (with a W3C baggage propagator registered) and the
 * `consistency()` middleware of the service called picks it up. Without `@opentelemetry/api`
 * installed, `fn` simply runs.
 *
 * @example
 * ```ts
 * import type { Router } from 'pg-replica-router';
 * import { withTokenBaggage } from 'pg-replica-router/express';
 *
 * declare const router: Router;
 *
 * await withTokenBaggage(router, () => fetch('http://search/reindex', { method: 'POST' }));
 * ```
 */
export async function withTokenBaggage<T>(router: Router, fn: () => Promise<T> | T): Promise<T> {
  const api = otelApi();
  if (!api || !requestScopesOf(router)) return fn();
  const token = await router.currentToken();
  const active = api.context.active();
  const baggage = (api.propagation.getBaggage(active) ?? api.propagation.createBaggage()).setEntry(BAGGAGE_KEY, { value: token });
  return api.context.with(api.propagation.setBaggage(active, baggage), fn);
}
