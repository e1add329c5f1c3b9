import { createHmac, timingSafeEqual } from 'node:crypto';
import { decodePosition, encodePosition, type StoredPosition } from './position.js';

/** Why a token was ignored. */
export type TokenRejection = 'malformed' | 'oversized' | 'forged' | 'version' | 'foreign';

/** Tokens longer than this are rejected unread. */
export const MAX_TOKEN_LENGTH = 512;
const VERSION = '1';

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

function sign(secret: Buffer, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

/**
 * `1.<position>.<HMAC-SHA256>`, both base64url. The position carries the LSN, the WAL history
 * (system identifier, timeline) and the node of uncovered reads, as the stores keep it.
 */
export function encodeToken(position: StoredPosition, secret: Buffer): string {
  const body = `${VERSION}.${b64url(encodePosition(position))}`;
  return `${body}.${b64url(sign(secret, body))}`;
}

/** Decodes and verifies a token against any of `secrets` (to allow rotation). Never throws. */
export function decodeToken(token: unknown, secrets: readonly Buffer[]): { position: StoredPosition } | { rejected: TokenRejection } {
  if (typeof token !== 'string') return { rejected: 'malformed' };
  if (token.length > MAX_TOKEN_LENGTH) return { rejected: 'oversized' };
  const parts = token.split('.');
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[1]!) || !/^[A-Za-z0-9_-]+$/.test(parts[2]!)) return { rejected: 'malformed' };
  const [version, payload, signature] = parts as [string, string, string];
  if (version !== VERSION) return { rejected: /^\d{1,3}$/.test(version) ? 'version' : 'malformed' };
  const given = Buffer.from(signature, 'base64url');
  const body = `${version}.${payload}`;
  const genuine = secrets.some((secret) => {
    const expected = sign(secret, body);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!genuine) return { rejected: 'forged' };
  const position = decodePosition(Buffer.from(payload, 'base64url').toString('utf8'));
  return position ? { position } : { rejected: 'malformed' };
}
