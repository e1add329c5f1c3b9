import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemo, type Demo } from '../../examples/demo/server.js';

let demo: Demo;
let cookie = '';

beforeAll(async () => {
  demo = await startDemo({ port: 0, env: {} });
});

afterAll(async () => {
  await demo?.close();
});

/** A browser-like client of the demo's HTTP API (keeps cookies). */
async function call<T = Record<string, unknown>>(path: string, body?: unknown, user = 'ada'): Promise<T> {
  const res = await fetch(`${demo.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', 'x-demo-user': user, cookie },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const set = res.headers.getSetCookie().map((c) => c.split(';')[0]!);
  const jar = new Map(cookie ? cookie.split('; ').map((c) => c.split('=') as [string, string]) : []);
  for (const c of set) jar.set(c.split('=')[0]!, c.split('=')[1]!);
  cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

const setMode = (mode: string) => call('/control/mode', { mode });
const pauseAll = async (paused: boolean) => {
  for (const name of ['r1', 'r2']) await call(`/control/replicas/${name}`, { paused });
};
const settle = () => new Promise((resolve) => setTimeout(resolve, 800)); // the demo monitors every 250 ms

describe('the demo over HTTP (no browser)', () => {
  it('serves the page, its script and the status', async () => {
    expect((await fetch(`${demo.url}/`)).status).toBe(200);
    expect((await fetch(`${demo.url}/demo.js`)).status).toBe(200);
    const status = await call<{ store: string; replicas: Array<{ name: string }>; modes: Record<string, string>; controls: boolean }>(
      '/control/status',
    );
    expect(status.replicas.map((r) => r.name)).toEqual(['r1', 'r2']);
    expect(Object.keys(status.modes)).toEqual(['naive', 'sticky', 'pgrr']);
    expect(status.controls).toBe(true);
    expect(['redis', 'memory']).toContain(status.store);
  });

  it('"replica reads without consistency": a follow disappears on the next read', async () => {
    await setMode('naive');
    await settle();
    await pauseAll(true);
    try {
      await call('/api/follow', { target: 'grace' }, 'linus');
      const state = await call<{ following: boolean }>('/api/state?target=grace', undefined, 'linus');
      expect(state.following).toBe(false); // the bug the demo is about
    } finally {
      await pauseAll(false);
    }
  });

  it('pg-replica-router session consistency: the follow stays, across both app instances', async () => {
    await setMode('pgrr');
    await call('/control/round-robin', { on: true });
    await settle();
    await pauseAll(true);
    try {
      await call('/api/follow', { target: 'grace' }, 'ada');
      const instances = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const state = await call<{ following: boolean; instance: string }>('/api/state?target=grace', undefined, 'ada');
        expect(state.following).toBe(true);
        instances.add(state.instance);
      }
      expect([...instances].sort()).toEqual(['app-1', 'app-2']); // served by both instances
      const { decisions } = await call<{ decisions: Array<{ reason: string }> }>('/control/status');
      expect(decisions.map((d) => d.reason)).toContain('replica-behind'); // the log shows why reads went to the primary
    } finally {
      await pauseAll(false);
      await call('/control/round-robin', { on: false });
    }
  });

  it('time-based stickiness hides the write for 2 s, then shows stale data', async () => {
    await setMode('sticky');
    await settle();
    await pauseAll(true);
    try {
      await call('/api/follow', { target: 'grace' }, 'barbara');
      expect((await call<{ following: boolean }>('/api/state?target=grace', undefined, 'barbara')).following).toBe(true); // primary, within 2 s
      await new Promise((resolve) => setTimeout(resolve, 2100));
      expect((await call<{ following: boolean }>('/api/state?target=grace', undefined, 'barbara')).following).toBe(false); // back on a stale replica
    } finally {
      await pauseAll(false);
      await setMode('pgrr');
    }
  });

  it('posts, and sets a replica apply delay', async () => {
    const { id } = await call<{ id: number }>('/api/posts', { body: 'hello' });
    expect((await call<{ posts: Array<{ id: number }> }>('/api/state')).posts.map((p) => p.id)).toContain(id);
    expect(await call('/control/replicas/r1', { delayMs: 500 })).toEqual({ ok: true });
    expect(await call('/control/replicas/r1', { delayMs: 0 })).toEqual({ ok: true });
  });
});
