/**
 * Every way an upgrade (or a `GET /events` stream) is refused, as the client sees it: the HTTP status, the metric
 * label, when it happens and what the client should do. One table: the server answers from it, /metrics labels
 * by its keys, and the README's refusal table is checked against it by `test/readme.test.ts`.
 */

/** One reason an upgrade is refused, as the client sees it. */
export interface RefusalCause {
  /** The HTTP status; 503s carry `Retry-After: 1`. */
  readonly status: number;
  readonly when: string;
  readonly advice: string;
}

/** Refusal causes by metric label. */
export const Refusals = {
  bad_name: {
    status: 400,
    when: 'channel name empty, over 63 bytes of UTF-8, not one path segment, or bad percent-encoding',
    advice: 'fix the URL; do not retry',
  },
  no_subprotocol: {
    status: 400,
    when: 'an upgrade on `/` that does not offer the subprotocol `pgws.v1`',
    advice: 'offer `pgws.v1` in `Sec-WebSocket-Protocol`, or connect to `/<channel>` for plain mode',
  },
  upgrade_failed: {
    status: 400,
    when: 'the WebSocket handshake itself was malformed',
    advice: 'fix the client; do not retry',
  },
  token_missing: {
    status: 401,
    when: 'with `[auth]`: no token offered for a plain socket or a stream on a channel that is not `public`, or for an HTTP publish',
    advice: 'send `Authorization: Bearer <token>` (or `?token=` where `query_token` is on)',
  },
  token_invalid: {
    status: 401,
    when: 'with `[auth]`: the token of a plain upgrade, a stream or an HTTP publish is invalid, expired, or revoked with `pgws.revoke`',
    advice: 'get a fresh token; do not retry with this one',
  },
  forbidden: {
    status: 403,
    when: 'plain mode with `[auth]`: the token does not grant `r` on the channel',
    advice: 'use a token that grants the channel; do not retry',
  },
  origin_not_allowed: {
    status: 403,
    when: 'the `Origin` header is not in `[server] allowed_origins` (requests without `Origin` are not refused for this)',
    advice: 'serve the page from an allowed origin; do not retry',
  },
  unknown_channel: {
    status: 404,
    when: 'channel not declared and `unknown_channels = "reject"`',
    advice: 'fix the channel; do not retry',
  },
  not_websocket: {
    status: 426,
    when: 'a plain HTTP GET on a channel path',
    advice: 'connect with a WebSocket, or stream the channel with `GET /events?channel=C`',
  },
  subject_limit: {
    status: 429,
    when: "with `[auth]`: a plain upgrade or a stream whose token's subject already holds `[auth] max_connections_per_subject` connections on this instance",
    advice: 'close another connection first; retry with backoff',
  },
  database_down: {
    status: 503,
    when: 'the LISTEN connection is down, or a LISTEN timed out (5 s)',
    advice: 'retry with backoff',
  },
  not_ready: {
    status: 503,
    when: 'no NOTIFY round trip has come back on the current LISTEN connection yet (after start or a reconnect), or, with `[auth]`, the revocations are not loaded yet',
    advice: 'retry with backoff',
  },
  connection_limit: {
    status: 503,
    when: '`max_connections` reached',
    advice: 'retry with backoff (to another instance)',
  },
  file_limit: {
    status: 503,
    when: 'the process is at its open-file limit (the soft `ulimit -n` less 64 kept for itself)',
    advice: 'retry with backoff (to another worker or instance); raise `ulimit -n`',
  },
  channel_limit: {
    status: 503,
    when: '`max_channels` distinct channels already LISTENed',
    advice: 'retry with backoff',
  },
  shutting_down: {
    status: 503,
    when: 'the server is shutting down',
    advice: 'retry with backoff (to another instance)',
  },
} as const satisfies Readonly<Record<string, RefusalCause>>;

/** Why an upgrade was refused, named by its metric label. */
export type RefusalLabel = keyof typeof Refusals;

/** The headers a refusal carries: `Retry-After` on every 503, so clients back off instead of hammering. */
export function refusalHeaders(label: RefusalLabel): Record<string, string> {
  return Refusals[label].status === 503 ? { 'retry-after': '1' } : {};
}
