/**
 * What a client can see of the bridge: WebSocket close codes and HTTP statuses.
 *
 * One table, so the README, the console and the tests agree on every number. Close codes follow
 * RFC 6455 §7.4.1 and the IANA registry (1012 "service restart", 1013 "try again later").
 */
export const Close = {
  /** The server is shutting down (SIGINT/SIGTERM). Reconnect to another instance or later. */
  goingAway: 1001,
  /** The client sent a data frame: plain channel sockets are receive-only. */
  receiveOnly: 1003,
  /** The client fell more than `slow_consumer_bytes` behind; closed rather than silently dropped. */
  slowConsumer: 1008,
  /** The client sent a frame over `max_message_bytes` (uWebSockets closes these itself). */
  tooBig: 1009,
  /** The database connection was lost and restored: notifications may have been missed. */
  databaseRestart: 1012,
} as const;

export type CloseCode = (typeof Close)[keyof typeof Close];

/** Close reasons sent in the close frame (RFC 6455 §5.5.1: at most 123 bytes). */
export const CloseReason: Readonly<Record<CloseCode, string>> = {
  [Close.goingAway]: 'server shutting down',
  [Close.receiveOnly]: 'channel sockets are receive-only',
  [Close.slowConsumer]: 'slow consumer: too much unsent data',
  [Close.tooBig]: 'message too big',
  [Close.databaseRestart]: 'database connection restored: notifications may have been missed',
};

/** Why an upgrade was refused, with the HTTP status the client sees. */
export const Refusal = {
  badName: 400,
  notWebSocket: 426,
  upgradeFailed: 400,
  unknownChannel: 404,
  databaseDown: 503,
  connectionLimit: 503,
  channelLimit: 503,
  shuttingDown: 503,
} as const;

export type RefusalReason = keyof typeof Refusal;

/** Text frames are all the bridge sends; this is the one place that says how a payload is framed. */
export type Frame = string;
