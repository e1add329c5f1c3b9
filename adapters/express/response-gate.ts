import type { ServerResponse } from 'node:http';

type Method = 'writeHead' | 'write' | 'end' | 'flushHeaders';
const METHODS: Method[] = ['writeHead', 'write', 'end', 'flushHeaders'];

/**
 * Holds back the response until `before()` has run: the first call to writeHead, write, end or
 * flushHeaders (every way Express, streams and error handlers send bytes) starts `before()`,
 * and that call and any others are queued and replayed, in order, once it settles. So nothing
 * reaches the client — not even the status line — before the session's position is stored.
 */
export function gateResponse(res: ServerResponse, before: () => Promise<void>): void {
  const originals = new Map<Method, (...args: unknown[]) => unknown>();
  for (const method of METHODS) originals.set(method, (res[method] as (...args: unknown[]) => unknown).bind(res));
  const queue: Array<[Method, unknown[]]> = [];
  let started = false;

  const release = () => {
    for (const method of METHODS) res[method] = originals.get(method) as never;
    for (const [method, args] of queue.splice(0)) originals.get(method)!(...args);
  };

  const start = () => {
    if (started) return;
    started = true;
    before().then(release, release);
  };
  // A response that ends without a byte written (the client went away, res.destroy()) still
  // stores what the request wrote.
  res.once('close', start);

  for (const method of METHODS) {
    res[method] = ((...args: unknown[]) => {
      queue.push([method, args]);
      start();
      // write() reports "keep going" (the few chunks queued meanwhile are held in memory);
      // writeHead() and end() return the response, for chaining.
      return method === 'write' ? true : res;
    }) as never;
  }
}
