/**
 * The frames of `pgws.v1` as AsyncAPI messages of the multiplexed endpoint. Client frames are converted from
 * the very valibot schemas that parse them (`protocol/frames.ts`), so the document cannot promise a field the
 * parser refuses; server frames are written here, their codes and reasons taken from the tables that the
 * server sends from (`base/codes.ts`, `protocol/replies.ts`).
 */
import { toJsonSchema } from '@valibot/to-json-schema';
import { ErrorCode } from '../base/codes.ts';
import { ClientFrames } from '../protocol/frames.ts';
import { UNSUBSCRIBE_REASONS } from '../protocol/replies.ts';

/** A JSON Schema, as the document holds it. */
export type Schema = Record<string, unknown>;

/** One AsyncAPI message: its name, a one-line summary, and the frame's JSON Schema. */
export interface FrameMessage {
  readonly name: string;
  readonly summary: string;
  readonly contentType: 'application/json';
  readonly payload: Schema;
}

/** What each client frame does. */
const CLIENT_SUMMARIES: Readonly<Record<keyof typeof ClientFrames, string>> = {
  subscribe: 'Start receiving a channel; `since` resumes after a position, `filter` narrows (both optional).',
  unsubscribe: 'Stop receiving a channel.',
  publish:
    'Send a payload to everyone on a channel, through PostgreSQL; `traceparent` (W3C Trace Context) continues the sender trace in the bridge spans.',
  auth: 'Present or refresh a token (only with `[auth]`); answered with a new `ready`.',
  ping: 'Liveness check for clients that cannot send WebSocket pings (browsers); answered with `pong`.',
};

const FIELDS: Readonly<Record<string, string>> = {
  id: 'Any string or number chosen by the client; every answer to the frame echoes it.',
  channel: 'The channel name: 1 to 63 bytes of UTF-8, taken literally and case-sensitively.',
  since: 'Resume after this position: recovered exactly, or not at all.',
  filter: 'Conditions on the validated payload, all of which must hold: dot paths to a value or to one operator.',
  payload: 'What to publish: valid against the channel schema, or a string on a raw channel.',
  token: 'A JWT.',
  traceparent: 'A W3C traceparent to continue; a malformed one is ignored.',
};

const withDescriptions = (schema: Schema): Schema => {
  const properties = schema['properties'] as Record<string, Schema> | undefined;
  if (properties === undefined) return schema;
  const described = Object.entries(properties).map(([key, property]) => [
    key,
    FIELDS[key] === undefined ? property : { ...property, description: FIELDS[key] },
  ]);
  return { ...schema, properties: Object.fromEntries(described) };
};

/** A client frame's schema, from its valibot schema; parts it cannot express (a fallback) are left out. */
export function clientFrameSchema(type: keyof typeof ClientFrames): Schema {
  const { $schema: _, ...schema } = toJsonSchema(ClientFrames[type], { errorMode: 'ignore', target: 'draft-07' });
  return withDescriptions(schema);
}

/** Every client frame as a message. */
export function clientMessages(): FrameMessage[] {
  return (Object.keys(ClientFrames) as (keyof typeof ClientFrames)[]).map((type) => ({
    name: type,
    summary: CLIENT_SUMMARIES[type],
    contentType: 'application/json',
    payload: clientFrameSchema(type),
  }));
}

const id = {
  anyOf: [{ type: 'string' }, { type: 'number' }],
  description: 'The `id` of the frame answered, if it had one.',
};
const channel = { type: 'string', minLength: 1 };
const epoch = { type: 'string', description: 'Opaque; changes whenever the bridge cannot vouch for continuity.' };
const seq = { type: 'integer', minimum: 0 };

const frame = (type: string, properties: Record<string, unknown>, required: readonly string[]): Schema => ({
  type: 'object',
  properties: { type: { const: type }, ...properties },
  required: ['type', ...required],
});

/** Every server frame: what it carries and when it is sent. */
const SERVER_FRAMES: readonly (readonly [name: string, summary: string, payload: Schema])[] = [
  [
    'ready',
    'First frame after the socket opens, and again after each accepted `auth`.',
    frame(
      'ready',
      { subject: { type: ['string', 'null'] }, expires: { type: ['integer', 'null'], description: 'Unix seconds' } },
      ['subject', 'expires'],
    ),
  ],
  [
    'subscribed',
    'A subscribe succeeded, once the channel is LISTENed; the next message has `seq` + 1 (unless filtered out).',
    frame('subscribed', { id, channel, epoch, seq, recovered: { type: 'boolean' } }, ['channel', 'epoch', 'seq']),
  ],
  [
    'message',
    'A notification: the validated JSON value on schema channels, the exact text (a JSON string) on raw ones.',
    frame('message', { channel, seq: { type: 'integer', minimum: 1 }, payload: {} }, ['channel', 'seq', 'payload']),
  ],
  [
    'gap',
    'Continuity on the channel is broken: notifications may be missing; reload your state. The subscription stays.',
    frame('gap', { channel, epoch, seq: { const: 0 } }, ['channel', 'epoch', 'seq']),
  ],
  [
    'unsubscribed',
    'The answer to `unsubscribe` (`client`), or a refreshed token no longer grants the channel (`forbidden`).',
    frame('unsubscribed', { id, channel, reason: { enum: [...UNSUBSCRIBE_REASONS] } }, ['channel', 'reason']),
  ],
  [
    'published',
    'The publish reached PostgreSQL (`pg_notify` returned).',
    frame('published', { id, channel }, ['channel']),
  ],
  ['pong', 'The answer to `ping`.', frame('pong', { id }, [])],
  [
    'error',
    'A frame could not be honoured; the socket stays open.',
    frame(
      'error',
      {
        id,
        // As the client sent it: a `bad_channel` error echoes the name it refuses, empty included.
        channel: { type: 'string' },
        code: {
          enum: Object.keys(ErrorCode),
          description: Object.entries(ErrorCode)
            .map(([code, meaning]) => `${code}: ${meaning}`)
            .join('; '),
        },
        message: { type: 'string' },
        issues: {
          type: 'array',
          items: {
            type: 'object',
            properties: { path: { type: 'string' }, message: { type: 'string' } },
            required: ['path', 'message'],
          },
        },
      },
      ['code', 'message'],
    ),
  ],
];

/** Every server frame as a message. */
export function serverMessages(): FrameMessage[] {
  return SERVER_FRAMES.map(([name, summary, payload]) => ({ name, summary, contentType: 'application/json', payload }));
}
