/**
 * The multiplexed endpoint `/` in the AsyncAPI document: every pgws.v1 frame as a message (`frames.ts`), one
 * publish message per channel with `publish = true` carrying the channel's input schema, a send operation per
 * client frame with the frames that answer it, and one receive for what the server sends unasked.
 */
import type { ChannelDescription } from '../channels/discovery.ts';
import { clientFrameSchema, clientMessages, type FrameMessage, type Schema, serverMessages } from './frames.ts';

/** The endpoint's key among the document's channels. */
export const MULTIPLEXED = 'multiplexed';

/** A JSON Reference into the document: `ref('channels/orders')`. */
export const ref = (path: string) => ({ $ref: `#/${path}` });

// `$schema` belongs at a schema's root, and here the input schema is a property of the frame's.
const withoutDialect = ({ $schema: _, ...schema }: Schema): Schema => schema;

/** The publish frame of one channel: `channel` fixed, `payload` its input schema (a string on raw channels). */
function publishMessage(id: string, described: ChannelDescription): FrameMessage {
  const frame = clientFrameSchema('publish');
  const properties = frame['properties'] as Record<string, Schema>;
  return {
    name: `publish_${id}`,
    summary: `Publish on ${JSON.stringify(described.name)}; answered with \`published\` or an \`error\`.`,
    contentType: 'application/json',
    payload: {
      ...frame,
      properties: {
        ...properties,
        channel: { const: described.name },
        payload: described.input === null ? { type: 'string' } : withoutDialect(described.input),
      },
    },
  };
}

// The frames that answer each client frame (a `subscribe` with `since` is followed by the replayed messages).
const REPLIES: Readonly<Record<string, readonly string[]>> = {
  subscribe: ['subscribed', 'message', 'error'],
  unsubscribe: ['unsubscribed', 'error'],
  publish: ['published', 'error'],
  auth: ['ready', 'error'],
  ping: ['pong'],
};

/**
 * The endpoint's channel and operations. `publishes` are the channels that take publishes, by document key;
 * `schemes` the security schemes in force, which publishing (a `w` grant) needs.
 */
export function describeMultiplexed(
  publishes: readonly (readonly [id: string, described: ChannelDescription])[],
  schemes: readonly string[],
): { channel: Record<string, unknown>; operations: Record<string, unknown> } {
  const client = clientMessages();
  const server = serverMessages();
  const published = publishes.map(([id, described]) => publishMessage(id, described));
  const channel = ref(`channels/${MULTIPLEXED}`);
  const message = (name: string) => ref(`channels/${MULTIPLEXED}/messages/${name}`);
  const security =
    schemes.length === 0 ? {} : { security: schemes.map((key) => ref(`components/securitySchemes/${key}`)) };
  const operations: Record<string, unknown> = {};
  for (const { name, summary } of [...client, ...published]) {
    const publish = name.startsWith('publish');
    operations[`send_${name}`] = {
      action: 'send',
      channel,
      summary,
      messages: [message(name)],
      reply: { channel, messages: (REPLIES[publish ? 'publish' : name] ?? []).map(message) },
      ...(publish ? security : {}),
    };
  }
  operations['receive_frames'] = {
    action: 'receive',
    channel,
    summary: 'What the server sends unasked: `ready` first, then messages, gaps and narrowed subscriptions.',
    messages: server.map(({ name }) => message(name)),
  };
  return {
    channel: {
      address: '/',
      title: 'Multiplexed endpoint (pgws.v1)',
      description:
        'One socket, many channels: offer the subprotocol `pgws.v1`. Every frame is one JSON text object with a `type`; positions (`epoch`, `seq`) resume a subscription after a drop.',
      messages: Object.fromEntries([...client, ...server, ...published].map((frame) => [frame.name, frame])),
      bindings: {
        ws: {
          bindingVersion: '0.1.0',
          headers: {
            type: 'object',
            properties: {
              'Sec-WebSocket-Protocol': { type: 'string', description: '`pgws.v1`, and optionally `bearer.<token>`' },
            },
            required: ['Sec-WebSocket-Protocol'],
          },
        },
      },
    },
    operations,
  };
}
