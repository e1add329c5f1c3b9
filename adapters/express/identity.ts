import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse, serialize } from 'cookie';

export interface CookieOptions {
  /** Cookie name. Default `pgrr_sid`. */
  name?: string;
  /** Lifetime in seconds. Default 30 days. */
  maxAgeSeconds?: number;
  /** `Secure` attribute: `'auto'` (default) sets it when the request came over TLS (`req.secure`, which honours Express's `trust proxy`). */
  secure?: boolean | 'auto';
  /** Cookie path. Default `/`. */
  path?: string;
}

const ID = /^[A-Za-z0-9_-]{22,64}$/;

interface RequestLike extends IncomingMessage {
  secure?: boolean;
  session?: { id?: unknown };
  sessionID?: unknown;
}

/** express-session's id, when it is in use. */
export function expressSessionId(req: RequestLike): string | undefined {
  const id = req.sessionID ?? req.session?.id;
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

/** The id in our own cookie, if the request carries a well-formed one. */
export function cookieId(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  const value = parse(header)[name];
  return value && ID.test(value) ? value : undefined;
}

/** Issues a new random session cookie (HttpOnly, SameSite=Lax, Secure behind TLS). */
export function issueCookie(req: RequestLike, res: ServerResponse, options: Required<CookieOptions>): string {
  const id = randomBytes(18).toString('base64url');
  const secure = options.secure === 'auto' ? Boolean(req.secure ?? (req.socket as { encrypted?: boolean }).encrypted) : options.secure;
  const cookie = serialize(options.name, id, {
    httpOnly: true,
    sameSite: 'lax',
    secure,
    path: options.path,
    maxAge: options.maxAgeSeconds,
  });
  const existing = res.getHeader('Set-Cookie');
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  res.setHeader('Set-Cookie', [...list, cookie]);
  return id;
}
