import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Express } from 'express';

/** Starts an Express app on a random loopback port. */
export async function listen(app: Express): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** A tiny browser: keeps cookies between requests (no token header unless asked). */
export class Browser {
  readonly cookies = new Map<string, string>();
  lastToken: string | undefined;

  async fetch(url: string, init: RequestInit & { sendToken?: boolean; sendCookies?: boolean } = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (init.sendCookies !== false && this.cookies.size > 0) {
      headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    }
    if (init.sendToken && this.lastToken) headers.set('x-consistency-token', this.lastToken);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const [name, value] = pair!.split('=') as [string, string];
      this.cookies.set(name.trim(), value.trim());
    }
    const token = res.headers.get('x-consistency-token');
    if (token) this.lastToken = token;
    return res;
  }

  async json<T = Record<string, unknown>>(
    url: string,
    init: RequestInit & { sendToken?: boolean; sendCookies?: boolean } = {},
  ): Promise<T> {
    const res = await this.fetch(url, init);
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }
}
