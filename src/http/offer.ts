/**
 * What an upgrade request offers: the subprotocols of its `Sec-WebSocket-Protocol` header (read once per
 * upgrade) and the token it carries. A browser cannot set `Authorization` on a WebSocket, so a token may
 * ride along as a second offered value, `bearer.<token>`; the server must answer with exactly `pgws.v1`,
 * never the token.
 */

/** The subprotocol name of the multiplexed protocol; the 101 answer selects exactly this value. */
export const SUBPROTOCOL = 'pgws.v1';

/** The prefix of an offered value that carries a token rather than naming a protocol. */
export const BEARER_PREFIX = 'bearer.';

/** What a client offered: whether `pgws.v1` is among the values, and the `bearer.` token if any. */
export interface Offer {
  /** `pgws.v1` is one of the comma-separated values, matched exactly (case-sensitive, RFC 6455 §4.1). */
  readonly multiplexed: boolean;
  /**
   * The text after `bearer.` in the first value that starts with it; `''` for a bare `bearer.` (an
   * invalid token, which the caller refuses like any other). Secret: never log it or echo it.
   */
  readonly token: string | undefined;
}

/**
 * Reads a `Sec-WebSocket-Protocol` header value (`null` when absent): values are comma-separated with
 * optional whitespace (RFC 9110 §5.6.1 lists). Only the first `bearer.` value counts: a client has one
 * identity, and picking one deterministically beats guessing which of two the client meant.
 */
export function readOffer(header: string | null | undefined): Offer {
  let multiplexed = false;
  let token: string | undefined;
  if (header === null || header === undefined) return { multiplexed, token };
  for (const part of header.split(',')) {
    const value = part.trim();
    if (value === SUBPROTOCOL) multiplexed = true;
    else if (token === undefined && value.startsWith(BEARER_PREFIX)) token = value.slice(BEARER_PREFIX.length);
  }
  return { multiplexed, token };
}

const BEARER = /^Bearer +(\S+) *$/i;

/**
 * The token an upgrade offers, by precedence: `Authorization: Bearer`, then (multiplexed only, so `offer`
 * is given) the `bearer.` subprotocol, then `?token=` when `[auth] query_token` is on. Only the first found
 * is used. Secret: never log it.
 */
export function tokenFrom(request: Request, offer: Offer | undefined, queryToken: boolean): string | undefined {
  const header = BEARER.exec(request.headers.get('authorization') ?? '')?.[1];
  if (header !== undefined) return header;
  if (offer?.token !== undefined) return offer.token;
  if (!queryToken) return undefined;
  return new URL(request.url).searchParams.get('token') ?? undefined;
}
