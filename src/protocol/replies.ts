/**
 * Server frames of the multiplexed protocol `pgws.v1`, as the JSON text sent to the client (the error
 * codes they carry are `../base/codes.ts`).
 *
 * Pure: no sockets. Every encoder puts `type` first and leaves `id` out when the client's frame carried
 * none (JSON.stringify drops `undefined` properties), so answers read the same in every log.
 */

import type { ErrorCode } from '../base/codes.ts';
import type { PayloadIssue } from '../channels/catalog.ts';

/** A client's correlation id: any JSON string or finite number, echoed in every answer to that frame. */
export type FrameId = string | number;

/** Why a subscription can end without the socket closing: the client asked, or a refreshed token lost it. */
export const UNSUBSCRIBE_REASONS = ['client', 'forbidden'] as const;

/** Why a subscription ended without the socket closing. */
export type UnsubscribeReason = (typeof UNSUBSCRIBE_REASONS)[number];

/** `ready`: first frame on a socket and after each accepted `auth`; `null` for an anonymous socket. */
export function encodeReady(subject: string | null, expires: number | null): string {
  return JSON.stringify({ type: 'ready', subject, expires });
}

/** The fields of a `subscribed` answer; `recovered` only when the subscribe carried `since`. */
export interface Subscribed {
  readonly id?: FrameId | undefined;
  readonly channel: string;
  readonly epoch: string;
  readonly seq: number;
  readonly recovered?: boolean | undefined;
}

/** `subscribed`: the channel is LISTENed; the next message on it has `seq` + 1 (unless filtered). */
export function encodeSubscribed(answer: Subscribed): string {
  const { id, channel, epoch, seq, recovered } = answer;
  return JSON.stringify({ type: 'subscribed', id, channel, epoch, seq, recovered });
}

/**
 * `message`: one notification. This runs once per notification (per distinct filter), so it is string
 * concatenation of texts serialised earlier: `channelJson` is `JSON.stringify(channel)` kept per channel,
 * `payloadJson` is the payload's JSON text (the catalog's frame on schema channels, `JSON.stringify(text)`
 * on raw ones). Neither is checked: they must already be JSON.
 */
export function encodeMessage(channelJson: string, seq: number, payloadJson: string): string {
  return '{"type":"message","channel":' + channelJson + ',"seq":' + seq + ',"payload":' + payloadJson + '}';
}

/** A `message` without a seq: a plain NOTIFY on a durable channel, which the database did not number. */
export function encodeUnnumbered(channelJson: string, payloadJson: string): string {
  return '{"type":"message","channel":' + channelJson + ',"payload":' + payloadJson + '}';
}

/** `gap`: continuity on `channel` is broken; `epoch` is the new one and `seq` its head (0). */
export function encodeGap(channel: string, epoch: string, seq: number): string {
  return JSON.stringify({ type: 'gap', channel, epoch, seq });
}

/** `unsubscribed`: the answer to `unsubscribe` (`client`), or a refreshed token lost the channel. */
export function encodeUnsubscribed(channel: string, reason: UnsubscribeReason, id?: FrameId): string {
  return JSON.stringify({ type: 'unsubscribed', id, channel, reason });
}

/** `published`: `pg_notify` returned, so the payload is in PostgreSQL's queue. */
export function encodePublished(channel: string, id?: FrameId, seq?: number): string {
  return JSON.stringify({ type: 'published', id, channel, seq });
}

/** `pong`: the answer to `ping`. */
export function encodePong(id?: FrameId): string {
  return JSON.stringify({ type: 'pong', id });
}

/** The fields of an `error` frame. `message` must never contain a token or a secret. */
export interface ErrorReply {
  readonly id?: FrameId | undefined;
  readonly channel?: string | undefined;
  readonly code: ErrorCode;
  readonly message: string;
  readonly issues?: readonly PayloadIssue[] | undefined;
}

/** `error`: a frame could not be honoured; the socket stays open. */
export function encodeError(reply: ErrorReply): string {
  const { id, channel, code, message, issues } = reply;
  return JSON.stringify({ type: 'error', id, channel, code, message, issues });
}
