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
  res.setHeader('Set-Cookie', appendCookie(res, serializeCookie(req, options, id)));
  return id;
}

/**
 * The position cookie a request carries back (a signed token set by {@link positionCookie}), or
 * undefined. Verified where it is absorbed, like a token header: a bad one is ignored there.
 */
export function carriedPosition(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  try {
    return parse(header)[name] || undefined;
  } catch {
    return undefined; // an undecodable cookie header: nothing carried
  }
}

/**
 * The `Set-Cookie` list with the position cookie added: `token` (a position the store could not
 * take, for the next request to carry back), or a clearing cookie when `token` is undefined.
 * Same attributes as the session cookie (HttpOnly, SameSite=Lax, path, Secure).
 */
export function positionCookie(
  req: RequestLike,
  res: ServerResponse,
  options: Required<CookieOptions>,
  token: string | undefined,
): string[] {
  const cookie = serializeCookie(req, token === undefined ? { ...options, maxAgeSeconds: 0 } : options, token ?? '');
  return appendCookie(res, cookie);
}

function serializeCookie(req: RequestLike, options: Required<CookieOptions>, value: string): string {
  const secure = options.secure === 'auto' ? Boolean(req.secure ?? (req.socket as { encrypted?: boolean }).encrypted) : options.secure;
  return serialize(options.name, value, {
    httpOnly: true,
    sameSite: 'lax',
    secure,
    path: options.path,
    maxAge: options.maxAgeSeconds,
  });
}

function appendCookie(res: ServerResponse, cookie: string): string[] {
  const existing = res.getHeader('Set-Cookie');
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  return [...list, cookie];
}
