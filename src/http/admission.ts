/**
 * Whether a WebSocket upgrade may proceed: the order of checks and the status each refusal gets.
 * Pure, so every refusal is tested without a database or a socket.
 */
import type { ChannelName } from '../base/name.ts';
import { type RefusalLabel, Refusals } from '../base/refusals.ts';

/** Everything the decision depends on, read by the server at the moment of the request. */
export interface AdmissionInput {
  readonly channel: ChannelName;
  readonly allowed: (name: string) => boolean;
  readonly stopping: boolean;
  /** The LISTEN connection was lost and is not back (not merely still connecting at startup). */
  readonly databaseDown: boolean;
  readonly connections: number;
  readonly maxConnections: number;
  /** Sockets the process can still open files for (its file limit less a reserve); see `fileLimitSockets`. */
  readonly maxSockets: number;
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
  if (input.connections >= input.maxSockets) {
    return refuse('file_limit', `this process is at its open-file limit (${input.maxSockets} sockets)`);
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
  readonly maxSockets: number;
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
  if (input.connections >= input.maxSockets) {
    return refuse('file_limit', `this process is at its open-file limit (${input.maxSockets} sockets)`);
  }
  return { ok: true, channel: '' };
}

/** File descriptors kept back from clients: stdio, the listening sockets, the database connections, logs. */
export const FILE_RESERVE = 64;

/**
 * How many client sockets a process with this soft open-file limit can hold; unlimited when it is unknown.
 * A socket past it would fail inside the handshake (EMFILE); refusing before is a clean 503 instead.
 */
export function fileLimitSockets(openFiles: number | undefined): number {
  return openFiles === undefined ? Number.POSITIVE_INFINITY : Math.max(1, openFiles - FILE_RESERVE);
}
