/**
 * The error codes of the multiplexed protocol `pgws.v1`: what an `error` frame's `code` can say, with what
 * it means to the client. A leaf: the protocol engine sends them, the README's table is checked against
 * this object, and nothing here knows how a frame is encoded.
 */
import { NOTIFY_MAX_BYTES } from './notify.ts';

/**
 * Every `code` an `error` frame can carry, with what it means to the client. The README table and the
 * tests are derived from this object, so a code is added here or nowhere. The socket stays open after
 * any of them.
 */
export const ErrorCode = {
  bad_request:
    'the frame is not JSON, not an object, of an unknown type, has a missing or mistyped field, or a bad filter',
  bad_channel: 'the channel name is empty, over 63 bytes of UTF-8, contains NUL or is not valid Unicode',
  unknown_channel: 'the channel is not declared and unknown_channels = "reject"',
  forbidden: 'the token does not allow this, or the channel does not allow publishing',
  already_subscribed: 'this socket is already subscribed to the channel',
  not_subscribed: 'this socket is not subscribed to the channel',
  invalid_payload: 'the published payload fails the channel schema, or is not a string on a raw channel',
  payload_too_large: `the published payload is over [server] max_payload_bytes, or over ${NOTIFY_MAX_BYTES} bytes without pgws.notify installed`,
  rate_limited: 'more publish frames than [server] publish_rate allows; this one was dropped, not queued',
  too_many_subscriptions: 'this socket already has [server] max_subscriptions subscriptions',
  unavailable: 'the database is unreachable, or the server is at max_channels; retry later',
} as const satisfies Record<string, string>;

/** One of the keys of the `ErrorCode` table. */
export type ErrorCode = keyof typeof ErrorCode;

/**
 * The HTTP status of each code where the answer is HTTP rather than a frame: a `GET /events` refused before its
 * stream starts, and `POST /channels/C/messages`. The body is then `{"code","message"}` (plus `channel` and
 * `issues` where the frame would carry them).
 */
export const ErrorStatus = {
  bad_request: 400,
  bad_channel: 400,
  unknown_channel: 404,
  forbidden: 403,
  // A stream that names a channel twice.
  already_subscribed: 400,
  not_subscribed: 400,
  invalid_payload: 400,
  payload_too_large: 413,
  rate_limited: 429,
  too_many_subscriptions: 400,
  unavailable: 503,
} as const satisfies Record<ErrorCode, number>;
