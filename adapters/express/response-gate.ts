import type { ServerResponse } from 'node:http';

type Method = 'writeHead' | 'write' | 'end' | 'flushHeaders';
const METHODS: Method[] = ['writeHead', 'write', 'end', 'flushHeaders'];
type Fn = (...args: unknown[]) => unknown;

/**
 * Holds back the response until `before()` has run: the first call to writeHead, write, end or
 * flushHeaders (every way Express, streams and error handlers send bytes) starts `before()`,
 * and that call and any others are queued and replayed, in order, once it settles. So nothing
 * reaches the client — not even the status line — before the session's position is stored.
 *
 * Later, `end()` waits for `beforeEnd()` (positions written while the body streamed), so the
 * response is not complete before those are stored either.
 */
export function gateResponse(res: ServerResponse, before: () => Promise<void>, beforeEnd: () => Promise<void>): void {
  const originals = new Map<Method, Fn>();
  for (const method of METHODS) originals.set(method, res[method] as Fn);
  const queue: Array<[Method, unknown[]]> = [];
  let state: 'open' | 'holding' | 'released' = 'open';
  const call = (method: Method, args: unknown[]) => (originals.get(method) as Fn).apply(res, args);

  // While held, the response counts as started, as it would without us (so that, say, an error
  // handler after res.json() does not try to send a second response).
  Object.defineProperty(res, 'headersSent', { configurable: true, get: () => queue.length > 0 || state === 'released' ? true : false });

  const release = () => {
    state = 'released';
    delete (res as { headersSent?: boolean }).headersSent; // the real getter again
    for (const [method, args] of queue.splice(0)) {
      try {
        call(method, args);
      } catch (err) {
        // What Node would have thrown to the caller (an invalid status code, say) has no caller
        // any more: fail this response, not the process.
        res.destroy(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
  };

  const start = () => {
    if (state !== 'open') return;
    state = 'holding';
    before().then(release, release);
  };
  // A response that ends without a byte written (the client went away, res.destroy()) still
  // stores what the request wrote.
  res.once('close', start);

  for (const method of METHODS) {
    const wrapper = (...args: unknown[]) => {
      if (state === 'released') {
        if (method !== 'end') return call(method, args);
        beforeEnd().then(
          () => call('end', args),
          () => call('end', args),
        );
        return res;
      }
      queue.push([method, args]);
      start();
      // write() reports "keep going" (what is queued meanwhile is held in memory, only until the
      // position is stored); writeHead() and end() return the response, for chaining.
      return method === 'write' ? true : res;
    };
    res[method] = wrapper as never;
  }
}
