/**
 * The AsyncAPI 3.0 document of a bridge (`GET /asyncapi.json`, `bun run asyncapi`), generated from its config
 * so that documentation sites, code generators and AsyncAPI Studio can read what `/channels` says in our own
 * format. Operations are a client's: it receives on every channel and sends frames to the multiplexed
 * endpoint, publishes included (plain sockets are receive-only).
 *
 * What it holds: the server; each declared channel at its plain-socket path with its output JSON Schema (the
 * `/channels` document's); the raw-channel pattern `/{channel}` when undeclared channels are served; the
 * multiplexed endpoint `/` (`multiplexed.ts`); security schemes with `[auth]`; and
 * the close codes and upgrade refusals of `base/wire.ts` as extensions of the server.
 */

import { Refusals } from '../base/refusals.ts';
import { Closes } from '../base/wire.ts';
import { type ChannelDescription, describeChannels } from '../channels/discovery.ts';
import type { Config } from '../config/load.ts';
import type { AuthConfig } from '../config/sections.ts';
import type { Schema } from './frames.ts';
import { describeMultiplexed, MULTIPLEXED, ref } from './multiplexed.ts';

/** What the document is generated from. */
export interface AsyncApiOptions {
  readonly config: Pick<Config, 'channels' | 'server' | 'auth'>;
  /** `host:port` clients connect to (the request's Host for `GET /asyncapi.json`). */
  readonly host: string;
  /** The bridge's version (package.json). */
  readonly version: string;
}

const RAW = 'raw';

/** A key AsyncAPI accepts (`^[\w.-]+$`), unique among `taken`: `chat room` → `chat_room`. */
function idOf(name: string, taken: Set<string>): string {
  const base = name.replace(/[^\w.-]+/g, '_') || 'channel';
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}_${n}`;
  taken.add(id);
  return id;
}

const rawPayload = { type: 'string', description: 'The payload exactly as sent to pg_notify.' };

/** The security schemes `[auth]` accepts, by key; the `queryToken` one only with `query_token = true`. */
function securitySchemes(auth: AuthConfig): Record<string, Schema> {
  const keys = auth.secretEnv !== undefined ? 'HS256 with a shared secret' : 'the keys of a JWKS';
  return {
    bearer: {
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description: `\`Authorization: Bearer <token>\` on the upgrade: a JWT (${keys}) with \`sub\`, \`exp\` and \`channels\` grants (\`r\`, \`w\`, \`rw\`).`,
    },
    subprotocol: {
      type: 'httpApiKey',
      in: 'header',
      name: 'Sec-WebSocket-Protocol',
      description: 'Multiplexed endpoint only: `bearer.<token>` offered beside `pgws.v1` (never echoed), for browsers.',
    },
    ...(auth.queryToken
      ? { queryToken: { type: 'httpApiKey', in: 'query', name: 'token', description: '`?token=<token>` in the URL.' } }
      : {}),
  };
}

/** Builds the document. */
export function describeAsyncApi(options: AsyncApiOptions): Record<string, unknown> {
  const { config } = options;
  const { auth } = config;
  const schemes = auth === undefined ? undefined : securitySchemes(auth);
  const plainSecurity = schemes === undefined ? [] : ['bearer', 'queryToken'].filter((k) => k in schemes);
  const security = (keys: readonly string[]) =>
    keys.length === 0 ? {} : { security: keys.map((key) => ref(`components/securitySchemes/${key}`)) };

  const taken = new Set([MULTIPLEXED, RAW]);
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const publishes: (readonly [id: string, described: ChannelDescription])[] = [];

  for (const described of describeChannels(config).channels) {
    const id = idOf(described.name, taken);
    channels[id] = declaredChannel(described);
    operations[`receive_${id}`] = {
      action: 'receive',
      channel: ref(`channels/${id}`),
      summary: `Receive ${JSON.stringify(described.name)}: one WebSocket text frame per notification.`,
      messages: [ref(`channels/${id}/messages/notification`)],
      ...security(described.public ? [] : plainSecurity),
    };
    if (described.publish) publishes.push([id, described]);
  }
  if (config.server.unknownChannels === 'raw') {
    channels[RAW] = {
      address: '/{channel}',
      title: 'Any undeclared channel',
      description:
        'Every channel not declared is served raw: the payload byte-exact, no schema. `channel` is the percent-encoded name, exactly the first argument of `pg_notify`.',
      parameters: { channel: { description: 'The percent-encoded channel name (1 to 63 bytes of UTF-8).' } },
      messages: { notification: { name: 'notification', contentType: 'text/plain', payload: rawPayload } },
    };
    operations[`receive_${RAW}`] = {
      action: 'receive',
      channel: ref(`channels/${RAW}`),
      messages: [ref(`channels/${RAW}/messages/notification`)],
      ...security(plainSecurity),
    };
  }
  const multiplexed = describeMultiplexed(publishes, schemes === undefined ? [] : Object.keys(schemes));
  channels[MULTIPLEXED] = multiplexed.channel;
  Object.assign(operations, multiplexed.operations);
  // Server-Sent Events (`GET /events`) and publishing over HTTP (`POST /channels/{channel}/messages`) join here
  // as channels of their own once http/ serves them (issue 21).

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'pg-notify-ws',
      version: options.version,
      description:
        'PostgreSQL LISTEN/NOTIFY delivered over WebSockets. Operations are described from a client: it receives on every channel, and sends pgws.v1 frames (publishes included) to the multiplexed endpoint.',
    },
    defaultContentType: 'application/json',
    servers: {
      bridge: {
        host: options.host,
        protocol: 'ws',
        description: 'The bridge. Close codes and upgrade refusals are listed in its x-pgws extensions.',
        'x-pgws-close-codes': Object.entries(Closes).map(([label, c]) => ({
          code: c.code,
          label,
          when: c.when,
          advice: c.advice,
        })),
        'x-pgws-upgrade-refusals': Object.entries(Refusals).map(([label, r]) => ({
          status: r.status,
          label,
          when: r.when,
          advice: r.advice,
        })),
      },
    },
    channels,
    operations,
    ...(schemes === undefined ? {} : { components: { securitySchemes: schemes } }),
  };
}

/** A durable channel's retention, in words: a paragraph of its own after the channel's description (CommonMark). */
function retention(described: ChannelDescription): string | undefined {
  if (!described.durable) return undefined;
  return `Durable: the newest ${described.retain} messages, none older than ${described.retain_seconds} s, are kept in the database for resume.`;
}

function declaredChannel(described: ChannelDescription): Record<string, unknown> {
  const description = [described.description, retention(described)].filter((text) => text != null).join('\n\n');
  return {
    address: `/${encodeURIComponent(described.name)}`,
    title: described.name,
    ...(description === '' ? {} : { description }),
    messages: {
      notification: {
        name: 'notification',
        ...(described.output === null
          ? { contentType: 'text/plain', payload: rawPayload }
          : { contentType: 'application/json', payload: described.output }),
      },
    },
    'x-pgws-history': described.history,
    'x-pgws-public': described.public,
    'x-pgws-durable': described.durable,
  };
}

/**
 * The document as JSON text for a request's host, kept for the last host asked: the document is asked for
 * again and again from the same host, and building it walks every channel's schema.
 */
export function asyncApiText(config: Config, version: string): (host: string) => string {
  let last: { host: string; text: string } | undefined;
  return (host) => {
    if (last?.host !== host) last = { host, text: JSON.stringify(describeAsyncApi({ config, host, version })) };
    return last.text;
  };
}
