import { decodePosition, type StoredPosition } from '../../lib/position.js';

/** The position inside a token (tests only; the signature is not checked here). */
export function tokenPosition(token: string): StoredPosition {
  const position = decodePosition(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
  if (!position) throw new Error(`not a token: ${token}`);
  return position;
}
