/**
 * Whether a WebSocket upgrade may proceed: the order of checks and the status each refusal gets.
 * Pure, so every refusal is tested without a database or a socket.
 */
import type { ChannelName } from '../channels/name.ts';
import { type RefusalLabel, Refusals } from './wire.ts';

/** Everything the decision depends on, read by the server at the moment of the request. */
export interface AdmissionInput {
  readonly channel: ChannelName;
  readonly allowed: (name: string) => boolean;
  readonly stopping: boolean;
  /** The LISTEN connection was lost and is not back (not merely still connecting at startup). */
  readonly databaseDown: boolean;
  readonly connections: number;
  readonly maxConnections: number;
  readonly listening: (name: string) => boolean;
  readonly channels: number;
  readonly maxChannels: number;
}

/** The decision; a refusal carries its HTTP status and a message safe to send to the client. */
export type Admission =
  | { readonly ok: true; readonly channel: string }
  | { readonly ok: false; readonly reason: RefusalLabel; readonly status: number; readonly message: string };

const refuse = (reason: RefusalLabel, message: string): Admission => ({
  ok: false,
  reason,
  status: Refusals[reason].status,
  message,
});

/**
 * Decides an upgrade. Capacity checks come last so a bad or unknown name is always told so, even when
 * the server is full; a channel that is already listened to costs no new LISTEN and passes the cap.
 */
export function admit(input: AdmissionInput): Admission {
  if (input.stopping) return refuse('shutting_down', 'server is shutting down');
  if (!input.channel.ok) return refuse('bad_name', input.channel.reason);
  const name = input.channel.name;
  if (!input.allowed(name))
    return refuse('unknown_channel', `channel "${name}" is not declared and unknown channels are rejected`);
  if (input.databaseDown) return refuse('database_down', 'database connection is down; retry shortly');
  if (input.connections >= input.maxConnections) {
    return refuse('connection_limit', `connection limit reached (${input.maxConnections})`);
  }
  if (!input.listening(name) && input.channels >= input.maxChannels) {
    return refuse('channel_limit', `channel limit reached (${input.maxChannels} distinct channels)`);
  }
  return { ok: true, channel: name };
}

/** Everything a multiplexed upgrade (on `/`) depends on: it names no channel, so only the socket counts. */
export interface MultiplexedInput {
  readonly offered: boolean;
  readonly stopping: boolean;
  readonly databaseDown: boolean;
  readonly connections: number;
  readonly maxConnections: number;
}

/** Decides a multiplexed upgrade: one socket toward `max_connections`, whatever its subscriptions. */
export function admitMultiplexed(input: MultiplexedInput): Admission {
  if (input.stopping) return refuse('shutting_down', 'server is shutting down');
  if (!input.offered) {
    return refuse('no_subprotocol', 'offer the subprotocol pgws.v1 on /, or connect to /<channel> for plain mode');
  }
  if (input.databaseDown) return refuse('database_down', 'database connection is down; retry shortly');
  if (input.connections >= input.maxConnections) {
    return refuse('connection_limit', `connection limit reached (${input.maxConnections})`);
  }
  return { ok: true, channel: '' };
}
