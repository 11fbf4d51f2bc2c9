/**
 * Client frames of the multiplexed protocol `pgws.v1`: the text a client sends, parsed once at the
 * boundary into a typed frame or into the error to answer with. Never throws, whatever the text.
 *
 * Unknown extra fields are ignored, on every frame and inside `since`: a newer client may send fields
 * this server does not know yet, and refusing them would make every protocol addition a breaking one.
 */
import * as v from 'valibot';
import { checkChannelName } from '../base/name.ts';
import type { FrameId } from './replies.ts';

export type { FrameId } from './replies.ts';

// What each field must be, in the words an error message uses; keyed by the field's own name.
const EXPECTED: Readonly<Record<string, string>> = {
  type: 'one of "subscribe", "unsubscribe", "publish", "auth", "ping"',
  id: 'a string or a finite number',
  channel: 'a string',
  since: 'an object {"epoch": string, "seq": integer >= 0}',
  epoch: 'a string',
  seq: 'a non-negative safe integer',
  last: 'an integer from 1 to 1000',
  payload: 'any JSON value',
  token: 'a string',
};

/** The most messages a `last` asks for. */
export const MAX_LAST = 1000;

// JSON.parse turns 1e400 into Infinity, which JSON.stringify would echo back as null.
const Id = v.union([v.string(), v.pipe(v.number(), v.finite())]);
const Channel = v.string();
const Since = v.object({ epoch: v.string(), seq: v.pipe(v.number(), v.safeInteger(), v.minValue(0)) });

const Subscribe = v.object({
  type: v.literal('subscribe'),
  id: v.optional(Id),
  channel: Channel,
  since: v.optional(Since),
  // docs/PROTOCOL.md "Starting from the latest messages": at most 1000, so one answer stays bounded.
  last: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_LAST))),
  // Checked by compileFilter once the channel (and whether it has a schema) is known.
  filter: v.optional(v.unknown()),
});
const Unsubscribe = v.object({ type: v.literal('unsubscribe'), id: v.optional(Id), channel: Channel });
// W3C Trace Context: a writer's trace to continue. An extra field (the contract leaves those to us); one
// that is not a string is ignored like a malformed one, never refused: tracing must not fail a publish.
const TraceParent = v.fallback(v.optional(v.string()), undefined);
// v.unknown() inside v.object still requires the key: a publish without `payload` is refused.
const Publish = v.object({
  type: v.literal('publish'),
  id: v.optional(Id),
  channel: Channel,
  payload: v.unknown(),
  traceparent: TraceParent,
});
// `id` is not in the contract's auth frame, but an error answering one should still echo it.
const Auth = v.object({ type: v.literal('auth'), id: v.optional(Id), token: v.string() });
const Ping = v.object({ type: v.literal('ping'), id: v.optional(Id) });

/** The schema of each client frame, by type: the parser's, and the AsyncAPI document's messages. */
export const ClientFrames = {
  subscribe: Subscribe,
  unsubscribe: Unsubscribe,
  publish: Publish,
  auth: Auth,
  ping: Ping,
};

const ClientFrameSchema = v.variant('type', Object.values(ClientFrames));

/** Any frame a client may send, after parsing; unknown fields are already dropped. */
export type ClientFrame = v.InferOutput<typeof ClientFrameSchema>;
/** `subscribe`, typed: `since`, `last` and `filter` present only when sent (`filter` still unchecked). */
export type SubscribeFrame = v.InferOutput<typeof Subscribe>;
/** `unsubscribe`, typed. */
export type UnsubscribeFrame = v.InferOutput<typeof Unsubscribe>;
/** `publish`, typed: `payload` is whatever JSON value was sent, unchecked against any schema. */
export type PublishFrame = v.InferOutput<typeof Publish>;
/** `auth`, typed. The token is secret: never log the frame. */
export type AuthFrame = v.InferOutput<typeof Auth>;
/** `ping`, typed. */
export type PingFrame = v.InferOutput<typeof Ping>;
/** A resume position as sent in `since`. */
export type Position = v.InferOutput<typeof Since>;

/**
 * The outcome of parsing one client frame. A refusal carries what the `error` answer needs: the frame's
 * `id` when it had a valid one (a malformed id is never echoed), and its `channel` when there was one.
 */
export type ParsedFrame =
  | { readonly ok: true; readonly frame: ClientFrame }
  | {
      readonly ok: false;
      readonly id: FrameId | undefined;
      readonly code: 'bad_request' | 'bad_channel';
      readonly message: string;
      readonly channel?: string;
    };

/** How many schema issues a `bad_request` message lists; the first few are enough to fix a client. */
const MAX_ISSUES = 3;
/** How much of a wrong value a message quotes back: enough to recognise it, never a whole payload. */
const MAX_QUOTE = 40;

/** Parses the text of one client frame. Never throws; see ParsedFrame for what a refusal carries. */
export function parseClientFrame(text: string): ParsedFrame {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch {
    // The parser's own message quotes the text, which may hold a token (`{"type":"auth","token":ey…`).
    return { ok: false, id: undefined, code: 'bad_request', message: 'the frame is not JSON' };
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    const got = input === null ? 'null' : Array.isArray(input) ? 'an array' : `a ${typeof input}`;
    return { ok: false, id: undefined, code: 'bad_request', message: `a frame must be a JSON object, got ${got}` };
  }
  const result = v.safeParse(ClientFrameSchema, input);
  if (!result.success) {
    const id = ownField(input, 'id');
    const channel = ownField(input, 'channel');
    return {
      ok: false,
      id: v.is(Id, id) ? id : undefined,
      code: 'bad_request',
      message: result.issues.slice(0, MAX_ISSUES).map(describe).join('; '),
      ...(typeof channel === 'string' && checkChannelName(channel).ok ? { channel } : {}),
    };
  }
  const frame = result.output;
  if ('channel' in frame) {
    const name = checkChannelName(frame.channel);
    if (!name.ok) {
      return { ok: false, id: frame.id, code: 'bad_channel', message: name.reason, channel: frame.channel };
    }
  }
  return { ok: true, frame };
}

// Own properties only: a frame is parsed JSON, but `id` must not come from Object.prototype either way.
function ownField(input: object, key: string): unknown {
  return Object.hasOwn(input, key) ? (input as Record<string, unknown>)[key] : undefined;
}

function describe(issue: v.GenericIssue): string {
  const path = v.getDotPath(issue) ?? '';
  const key = issue.path?.at(-1)?.key;
  const expected = (typeof key === 'string' ? EXPECTED[key] : undefined) ?? issue.expected ?? 'something else';
  const where = path === '' ? 'the frame' : path;
  if (issue.input === undefined) return `${where} is missing: expected ${expected}`;
  const received = issue.received.length > MAX_QUOTE ? `${issue.received.slice(0, MAX_QUOTE)}…` : issue.received;
  return `${where}: expected ${expected}, received ${received}`;
}
