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
export function gateResponse(
  res: ServerResponse,
  before: (setHeader: (name: string, value: string | string[]) => void) => Promise<void>,
  beforeEnd: () => Promise<void>,
): void {
  const originals = new Map<Method, Fn>();
  for (const method of METHODS) originals.set(method, res[method] as Fn);
  const queue: Array<[Method, unknown[]]> = [];
  let state: 'open' | 'holding' | 'released' = 'open';
  const call = (method: Method, args: unknown[]) => (originals.get(method) as Fn).apply(res, args);

  // While held, the response counts as started, as it would be without us: headersSent is true,
  // headers can no longer change (as Node would refuse), and a socket destroyed meanwhile (an
  // error handler after res.json(), say) is destroyed once the held response has gone out.
  const setHeader = res.setHeader;
  const removeHeader = res.removeHeader;
  const sent = () => {
    const err = new Error('Cannot set headers after they are sent to the client') as Error & { code: string };
    err.code = 'ERR_HTTP_HEADERS_SENT';
    throw err;
  };
  const socket = res.socket;
  const destroySocket = socket?.destroy;
  let destroyWith: [unknown] | undefined;
  const hold = () => {
    Object.defineProperty(res, 'headersSent', { configurable: true, get: () => true });
    res.setHeader = sent as never;
    res.removeHeader = sent as never;
    if (socket && destroySocket) {
      socket.destroy = ((err?: unknown) => {
        destroyWith = [err];
        return socket;
      }) as never;
    }
  };
  const unhold = () => {
    delete (res as { headersSent?: boolean }).headersSent; // the real getter again
    res.setHeader = setHeader;
    res.removeHeader = removeHeader;
    if (socket && destroySocket) socket.destroy = destroySocket;
  };

  const release = () => {
    state = 'released';
    unhold();
    for (const [method, args] of queue.splice(0)) {
      if (method === 'end') {
        // An end queued while held: what the handler wrote after the first byte must be stored
        // before it, as for an end called after the release.
        endAfterStored(args);
        break;
      }
      try {
        call(method, args);
      } catch (err) {
        // What Node would have thrown to the caller (an invalid status code, say) has no caller
        // any more: fail this response, not the process.
        res.destroy(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
    if (destroyWith && socket) {
      // Once the held response is handed to the OS (as it would have been before the destroy).
      const destroy = () => socket.destroy(destroyWith![0] as Error | undefined);
      if (res.writableFinished) destroy();
      else res.once('finish', destroy).once('close', destroy);
    }
  };

  const endAfterStored = (args: unknown[]) => {
    const end = () => {
      try {
        call('end', args);
      } catch (err) {
        res.destroy(err instanceof Error ? err : new Error(String(err)));
      }
    };
    beforeEnd().then(end, end);
  };

  const start = () => {
    if (state !== 'open') return;
    state = 'holding';
    hold();
    before((name, value) => setHeader.call(res, name, value)).then(release, release);
  };
  // A response that ends without a byte written (the client went away, res.destroy()) still
  // stores what the request wrote.
  res.once('close', () => {
    if (state !== 'open') return;
    state = 'released';
    void before(() => {}).catch(() => {});
  });

  for (const method of METHODS) {
    const wrapper = (...args: unknown[]) => {
      if (state === 'released') {
        if (method !== 'end') return call(method, args);
        endAfterStored(args);
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
