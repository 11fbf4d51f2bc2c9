/**
 * Every way a socket ends, as the client sees it, in one table: the close code, the text sent, the metric
 * label, and what the client should do (refused upgrades are `refusals.ts`).
 *
 * Every other place derives from these tables: the server sends `code` and `text`, /metrics labels by the
 * key (snake_case, one style for every label), and the README's tables are checked against them by
 * `test/readme.test.ts`. Close codes follow RFC 6455 §7.4.1 and the IANA registry (1012 "service restart").
 */

/** One way a socket ends, as the client sees it. */
export interface CloseCause {
  /** The WebSocket close code the client receives. */
  readonly code: number;
  /** The close frame's reason text (RFC 6455 §5.5.1: at most 123 bytes), or what the peer sees instead. */
  readonly text: string;
  /** Whether the bridge itself sends this code; otherwise it is what the client observes (1006, 1007). */
  readonly sent: boolean;
  readonly when: string;
  readonly advice: string;
}

/** Close causes by metric label. */
export const Closes = {
  shutdown: {
    code: 1001,
    text: 'server shutting down',
    sent: true,
    when: 'server shutting down (SIGINT/SIGTERM)',
    advice: 'reconnect with backoff (to another instance)',
  },
  receive_only: {
    code: 1003,
    text: 'channel sockets are receive-only',
    sent: true,
    when: 'the client sent a data frame on a plain channel socket (they are receive-only)',
    advice: 'stop sending; reconnect',
  },
  binary_frame: {
    code: 1003,
    text: 'pgws.v1 frames are JSON text',
    sent: true,
    when: 'the client sent a binary frame on a multiplexed socket',
    advice: 'send text frames; reconnect',
  },
  abnormal: {
    code: 1006,
    text: '(no close frame)',
    sent: false,
    when: 'no close frame: the peer vanished, or did not answer pings within `idle_timeout`',
    advice: 'reconnect with backoff',
  },
  invalid_utf8: {
    code: 1007,
    text: 'Invalid UTF-8',
    sent: true,
    when: 'the client sent a text frame that is not UTF-8',
    advice: 'fix the client',
  },
  slow_consumer: {
    code: 1008,
    text: 'slow consumer: too much unsent data',
    sent: true,
    when: 'slow consumer: more than `slow_consumer_bytes` unsent; frames before the close were delivered, later ones not',
    advice: 'reconnect and resynchronise; read faster',
  },
  too_big: {
    code: 1009,
    text: 'message too big',
    sent: true,
    when: 'the client sent a frame over `max_message_bytes`',
    advice: 'fix the client',
  },
  database_lost: {
    code: 1012,
    text: 'database connection lost: notifications may be missed',
    sent: true,
    when: 'the LISTEN connection was lost (sent at the moment of the loss): notifications sent until it is back are gone',
    advice: 'reconnect with backoff (503 until the database is back), then resynchronise (re-read state)',
  },
  token_invalid: {
    code: 4401,
    text: 'invalid token',
    sent: true,
    when: 'the token offered at the upgrade or in an `auth` frame is invalid (multiplexed), not yet valid, or revoked with `pgws.revoke`',
    advice: 'get a fresh token, then reconnect',
  },
  token_expired: {
    code: 4401,
    text: 'token expired',
    sent: true,
    when: "the socket's token reached `exp` (plus 5 s of tolerance) without being refreshed",
    advice: 'get a fresh token, then reconnect (refresh with an `auth` frame before `exp` to stay connected)',
  },
  token_subject: {
    code: 4401,
    text: 'token for another subject',
    sent: true,
    when: "an `auth` frame carried a token for another `sub` than the socket's",
    advice: 'get a fresh token, then reconnect',
  },
  disconnected: {
    code: 4403,
    text: 'disconnected by the server',
    sent: true,
    when: "the operator cut the socket's subject off with `pgws.disconnect` (the close text is the reason given, if any)",
    advice: 'do not reconnect with the same token; get a new one',
  },
  revoked: {
    code: 4403,
    text: 'token revoked',
    sent: true,
    when: "`pgws.revoke` revoked the socket's token (issued before the revocation's `before`, or without `iat`)",
    advice: 'do not reconnect with the same token; get a new one',
  },
  subject_limit: {
    code: 4429,
    text: 'too many connections for this subject',
    sent: true,
    when: 'the token, at the upgrade or in an `auth` frame, is for a subject that already holds `[auth] max_connections_per_subject` connections on this instance',
    advice: 'close another connection first; reconnect with backoff',
  },
} as const satisfies Readonly<Record<string, CloseCause>>;

/** A close the bridge (or its WebSocket layer) causes, named by its metric label. */
export type CloseLabel = keyof typeof Closes;

/** Every label `pgws_closes_total` uses: the causes above plus `client`, a close the client started. */
export type CloseMetricLabel = CloseLabel | 'client';

// RFC 6455 §5.5: a control frame carries at most 125 bytes, two of them the close code.
const CLOSE_TEXT_BYTES = 123;

/**
 * A close frame's reason text as sent: at most 123 bytes of UTF-8, cut at a character boundary, so text
 * from elsewhere (the reason an operator gave `pgws.disconnect`) never makes the close itself fail.
 */
export function closeText(text: string): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= CLOSE_TEXT_BYTES) return text;
  // A character cut in half decodes as one U+FFFD at the end, which goes.
  return new TextDecoder().decode(bytes.subarray(0, CLOSE_TEXT_BYTES)).replace(/\uFFFD$/, '');
}

/**
 * How a client reaches the bridge: the `transport` label of the metrics that count connections, closes,
 * refusals and publishes. `ws` is a WebSocket (plain or multiplexed), `sse` and `ndjson` a `GET /events`
 * stream, `http` one `POST /channels/C/messages`.
 */
export const Transports = {
  ws: 'a WebSocket, plain or multiplexed',
  sse: 'a Server-Sent Events stream (`GET /events`)',
  ndjson: 'a newline-delimited JSON stream (`GET /events` with `Accept: application/x-ndjson`)',
  http: 'one publish over HTTP (`POST /channels/C/messages`)',
} as const;

/** One of {@link Transports}. */
export type Transport = keyof typeof Transports;

/** The transports that hold a connection open (every one but a single publish request). */
export type HeldTransport = Exclude<Transport, 'http'>;

/** Text frames are all the bridge sends; this is the one place that says how a payload is framed. */
export type Frame = string;

/**
 * The label of a close the bridge did not send itself, from the code and reason the server saw.
 * uWebSockets sends the client 1009 for an oversized frame but reports it to the server as 1006 with its
 * own reason text, so both are read.
 */
export function closeLabelOf(code: number, reason: string): CloseMetricLabel {
  if (code === Closes.too_big.code || reason === 'Received too big message') return 'too_big';
  if (code === Closes.invalid_utf8.code) return 'invalid_utf8';
  return code === 1006 ? 'abnormal' : 'client';
}
