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

export interface RequestLike extends IncomingMessage {
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

/**
 * Issues a new random session cookie (HttpOnly, SameSite=Lax, Secure behind TLS) through `set`
 * (the response's own `setHeader`, which works while the response is held).
 */
export function issueCookie(
  req: RequestLike,
  res: ServerResponse,
  options: Required<CookieOptions>,
  set: (name: string, value: string[]) => void,
): string {
  const id = randomBytes(18).toString('base64url');
  try {
    set('Set-Cookie', appendCookie(res, serializeCookie(req, options, id)));
  } catch {
    // The response is already gone: the id still names this request's session.
  }
  return id;
}

/** Where a request's session key came from. */
export type SessionSource = 'option' | 'express-session' | 'cookie' | 'new-cookie' | 'token' | 'none';

/** A request's session key, where it came from, and whether the client shows it keeps no cookies. */
export interface RequestIdentity {
  readonly key: string | undefined;
  readonly source: SessionSource;
  /**
   * The session is brand new (nothing stored for it means no writes): its identity was made by
   * this request, and the request looks like a first visit — a GET, HEAD or OPTIONS without an
   * `Authorization` header. A client that keeps no cookies looks new on every request; one that
   * writes (a POST) or sends a credential is not trusted to be new, so it is owed the primary's
   * position, as a key the store does not hold.
   */
  readonly fresh: boolean;
  /** Carries a credential (`Authorization`) but no cookie of ours and nothing keyed on it: a client that keeps no cookies. */
  readonly cookieless: boolean;
}

/** How {@link resolveIdentity} finds a session. */
export interface IdentityRules<R extends RequestLike> {
  readonly session: ((req: R) => string | number | undefined | null) | undefined;
  readonly cookie: Required<CookieOptions> | false;
  /** The request carries a genuine consistency token. */
  readonly hasToken: boolean;
}

/**
 * The session of a request, first that applies: the `session` option; express-session's id; our
 * cookie; a token-only client (a token and no cookie); a new cookie, issued through `set`
 * (when `set` is given and cookies are on). Called once the route's middleware ran.
 */
export function resolveIdentity<R extends RequestLike>(
  req: R,
  res: ServerResponse,
  rules: IdentityRules<R>,
  set?: (name: string, value: string[]) => void,
): RequestIdentity {
  const chosen = rules.session?.(req);
  if (chosen !== undefined && chosen !== null && chosen !== '') return only(String(chosen), 'option');
  const fromSession = expressSessionId(req);
  if (fromSession) return only(`express-session:${fromSession}`, 'express-session');
  const fromCookie = rules.cookie ? cookieId(req, rules.cookie.name) : undefined;
  if (fromCookie) return only(`cookie:${fromCookie}`, 'cookie');
  // A client that sends a token and no cookie is served by the token alone.
  if (rules.hasToken) return { key: undefined, source: 'token', fresh: true, cookieless: false };
  const credential = req.headers.authorization !== undefined;
  const firstVisit = !credential && (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS');
  if (!rules.cookie || !set) return { key: undefined, source: 'none', fresh: firstVisit, cookieless: credential };
  return { key: `cookie:${issueCookie(req, res, rules.cookie, set)}`, source: 'new-cookie', fresh: firstVisit, cookieless: credential };
}

function only(key: string, source: SessionSource): RequestIdentity {
  return { key, source, fresh: false, cookieless: false };
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
