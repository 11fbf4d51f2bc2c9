/**
 * The channel catalog: which channels a client may open and how each notification becomes a frame.
 *
 * Pure: no database, no sockets. Each notification is encoded once here, then fanned out as the same
 * frame to every subscriber.
 */
import * as v from 'valibot';
import type { Config, PayloadSchema } from '../config/load.ts';
import type { Frame } from '../http/wire.ts';
import { inexactNumber } from '../schema/json-numbers.ts';

/** One problem found in a payload: a dot path into it (empty for the root) and a message. */
export interface PayloadIssue {
  readonly path: string;
  readonly message: string;
}

/** The outcome of encoding a notification. Invalid payloads are data, never exceptions. */
export type Encoded =
  | { readonly ok: true; readonly frame: Frame }
  | { readonly ok: false; readonly reason: 'json' | 'schema'; readonly issues: readonly PayloadIssue[] };

/** How many issues a rejection keeps: enough to fix the sender, bounded so logs stay small. */
export const MAX_ISSUES = 3;

/** The catalog built from a config: admission and encoding for every channel name. */
export interface Catalog {
  /** Whether a client may subscribe: declared channels always, others per `unknown_channels`. */
  allows(channel: string): boolean;
  /** Whether the channel is declared in the config. */
  declared(channel: string): boolean;
  /** Turns one notification payload into the frame every subscriber gets. */
  encode(channel: string, payload: string): Encoded;
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
    encode(channel, payload) {
      const schema = schemas.get(channel);
      return schema === undefined ? { ok: true, frame: payload } : encodeWith(schema, payload);
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
  // A module schema's transform may throw or yield something JSON cannot hold (a BigInt, a cycle):
  // that is one bad payload, never a crash.
  let result: v.SafeParseResult<PayloadSchema>;
  try {
    result = v.safeParse(schema, input);
    if (result.success) {
      const frame: string | undefined = JSON.stringify(result.output);
      if (frame !== undefined) return { ok: true, frame };
      return { ok: false, reason: 'schema', issues: [{ path: '', message: 'schema output is not a JSON value' }] };
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, reason: 'schema', issues: [{ path: '', message: `schema failed: ${message}` }] };
  }
  const issues = result.issues.slice(0, MAX_ISSUES).map((issue) => ({
    path: v.getDotPath(issue) ?? '',
    message: issue.message,
  }));
  return { ok: false, reason: 'schema', issues };
}
