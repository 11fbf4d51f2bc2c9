/**
 * The channel catalog: which channels a client may open and how each notification becomes a frame.
 *
 * Pure: no database, no sockets. Each notification is encoded once here, then fanned out as the same
 * frame to every subscriber.
 */
import * as v from 'valibot';
import type { Frame } from '../base/wire.ts';
import type { ChannelConfig, Config, PayloadSchema } from '../config/load.ts';
import { inexactNumber } from '../schema/json-numbers.ts';

/** The declared channels that are durable (`[channels.NAME] durable = true`), in the config's order. */
export const durableChannels = (config: Pick<Config, 'channels'>): ChannelConfig[] =>
  [...config.channels.values()].filter((channel) => channel.durable);

/** One problem found in a payload: a dot path into it (empty for the root) and a message. */
export interface PayloadIssue {
  readonly path: string;
  readonly message: string;
}

/** The outcome of encoding a notification. Invalid payloads are data, never exceptions. */
export type Encoded =
  | { readonly ok: true; readonly frame: Frame }
  | { readonly ok: false; readonly reason: 'json' | 'schema'; readonly issues: readonly PayloadIssue[] };

/** A value checked against a channel's schema: the JSON text of its parsed output, or what is wrong. */
export type Validated =
  | { readonly ok: true; readonly json: string }
  | { readonly ok: false; readonly issues: readonly PayloadIssue[] };

/** How many issues a rejection keeps: enough to fix the sender, bounded so logs stay small. */
export const MAX_ISSUES = 3;

/** The catalog built from a config: admission and encoding for every channel name. */
export interface Catalog {
  /** Whether a client may subscribe: declared channels always, others per `unknown_channels`. */
  allows(channel: string): boolean;
  /** Whether the channel is declared in the config. */
  declared(channel: string): boolean;
  /** Whether the channel has a schema: its payloads are JSON, and filters apply to them. */
  hasSchema(channel: string): boolean;
  /** Whether clients may publish on the channel (`[channels.NAME] publish = true`; undeclared never). */
  publishable(channel: string): boolean;
  /** Whether anyone may read the channel without a token (`[channels.NAME] public`; matters with `[auth]`). */
  isPublic(channel: string): boolean;
  /** How many messages of the channel are kept for resume (`[channels.NAME] history`; 0 = none). */
  history(channel: string): number;
  /** Whether the channel is durable (`[channels.NAME] durable`): its messages are rows, numbered by the database. */
  durable(channel: string): boolean;
  /** Turns one notification payload into the frame every subscriber gets. */
  encode(channel: string, payload: string): Encoded;
  /**
   * A frame as a multiplexed `message` carries it in `payload`: the frame itself on schema channels (already
   * the parsed value's JSON), the raw text as a JSON string on raw ones, made only when a socket needs it.
   */
  payloadJson(channel: string, frame: Frame): string | (() => string);
  /** Checks an already-parsed value (a client's publish) against a schema channel's schema. */
  validate(channel: string, value: unknown): Validated;
}

/** Builds the catalog; channels without a schema pass the payload through byte-exact. */
export function createCatalog(config: Pick<Config, 'channels' | 'server'>): Catalog {
  const schemas = new Map<string, PayloadSchema>();
  for (const channel of config.channels.values()) {
    if (channel.schema !== undefined) schemas.set(channel.name, channel.schema);
  }
  const rejectUnknown = config.server.unknownChannels === 'reject';
  return {
    allows: (channel) => !rejectUnknown || config.channels.has(channel),
    declared: (channel) => config.channels.has(channel),
    hasSchema: (channel) => schemas.has(channel),
    publishable: (channel) => config.channels.get(channel)?.publish === true,
    history: (channel) => config.channels.get(channel)?.history ?? 0,
    isPublic: (channel) => config.channels.get(channel)?.public === true,
    durable: (channel) => config.channels.get(channel)?.durable === true,
    encode(channel, payload) {
      const schema = schemas.get(channel);
      return schema === undefined ? { ok: true, frame: payload } : encodeWith(schema, payload);
    },
    payloadJson: (channel, frame) => (schemas.has(channel) ? frame : () => JSON.stringify(frame)),
    validate(channel, value) {
      const schema = schemas.get(channel);
      return schema === undefined ? { ok: true, json: JSON.stringify(value) } : validateWith(schema, value);
    },
  };
}

function encodeWith(schema: PayloadSchema, payload: string): Encoded {
  let input: unknown;
  try {
    input = JSON.parse(payload);
  } catch (error) {
    const message = error instanceof Error ? error.message : 'not JSON';
    return { ok: false, reason: 'json', issues: [{ path: '', message: `payload is not JSON: ${message}` }] };
  }
  const inexact = inexactNumber(payload, input);
  if (inexact !== undefined) {
    const message = `number ${inexact.length > 40 ? `${inexact.slice(0, 40)}…` : inexact} cannot be held exactly (beyond ±2^53 or out of range); send it as a string`;
    return { ok: false, reason: 'json', issues: [{ path: '', message }] };
  }
  const validated = validateWith(schema, input);
  return validated.ok ? { ok: true, frame: validated.json } : { ok: false, reason: 'schema', issues: validated.issues };
}

function validateWith(schema: PayloadSchema, input: unknown): Validated {
  // A module schema's transform may throw or yield something JSON cannot hold (a BigInt, a cycle):
  // that is one bad payload, never a crash.
  let result: v.SafeParseResult<PayloadSchema>;
  try {
    result = v.safeParse(schema, input);
    if (result.success) {
      const json: string | undefined = JSON.stringify(result.output);
      if (json !== undefined) return { ok: true, json };
      return { ok: false, issues: [{ path: '', message: 'schema output is not a JSON value' }] };
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, issues: [{ path: '', message: `schema failed: ${message}` }] };
  }
  const issues = result.issues.slice(0, MAX_ISSUES).map((issue) => ({
    path: v.getDotPath(issue) ?? '',
    message: issue.message,
  }));
  return { ok: false, issues };
}
