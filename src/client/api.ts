/**
 * The client's public types: its options, callbacks and the error it rejects with. `client.ts` re-exports
 * them, so consumers import everything from one place (`pg-notify-ws/client`).
 */

/** What a UI shows: connecting (or reconnecting), open, or closed for good by `close()`. */
export type ConnectionState = 'connecting' | 'open' | 'closed';

/**
 * What carries the client: `ws`, one multiplexed WebSocket; `sse`, a `GET /events` stream for what arrives and
 * `POST /channels/C/messages` for publishes (the same names as the server's `transport` metric label).
 */
export type ClientTransport = 'ws' | 'sse';

/** Where a message sits in its channel's stream. */
export interface MessageMeta {
  readonly seq: number;
  readonly epoch: string;
}

/** Continuity broke: reload state. `not_recovered`: a resume could not replay; `gap`: the server lost its database link. */
export interface GapInfo {
  readonly channel: string;
  readonly epoch: string;
  readonly seq: number;
  readonly reason: 'not_recovered' | 'gap';
}

/**
 * An error from the server or the client; `code` is the protocol's error code, or the client's own:
 * `closed`, `unavailable`, and for a close `unauthorized` (4401), `cut_off` (4403) or `subject_limit` (4429).
 */
export class PgwsError extends Error {
  override name = 'PgwsError' as const;
  readonly code: string;
  readonly channel: string | undefined;
  readonly issues: readonly { path: string; message: string }[] | undefined;

  constructor(code: string, message: string, extra: { channel?: string; issues?: PgwsError['issues'] } = {}) {
    super(message);
    this.code = code;
    this.channel = extra.channel;
    this.issues = extra.issues;
  }
}

/** Where a subscription starts (or resumes): the server's `subscribed` answer. */
export interface SubscribedInfo extends MessageMeta {
  /** Present when the subscribe resumed from a position: whether every missed message follows. */
  readonly recovered?: boolean;
}

/** Callbacks of one subscription. */
export interface SubscribeOptions<Payload> {
  /** Conditions on the payload (see the README's Filters); only schema channels take one. */
  readonly filter?: Readonly<Record<string, unknown>>;
  onMessage(payload: Payload, meta: MessageMeta): void;
  /**
   * The server answered the subscribe (again after every resubscribe): from now on each NOTIFY committed on
   * the channel reaches `onMessage`. For code that must not write before it listens, such as a test, and
   * for a UI that shows whether a resume was `recovered`.
   */
  onSubscribed?(info: SubscribedInfo): void;
  onGap?(info: GapInfo): void;
  /** The subscription ended with an error (refused, or no longer allowed); the client's `onError` otherwise. */
  onError?(error: PgwsError): void;
}

/** A live subscription. */
export interface Subscription {
  unsubscribe(): void;
}

/** The WebSocket constructor the client uses (the global one by default). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The multiplexed endpoint, `ws://host:8080/`. */
  readonly url: string | URL;
  /**
   * A token, or a function returning one (or a promise of one), called on every connect and before `exp`.
   * After the server cut the subject off (4403) the token it used is never sent again: the function must
   * give another one, or the client stops (as does a fixed token), telling `onError`.
   */
  readonly token?: string | (() => string | Promise<string>);
  /** Reconnect backoff bounds (full jitter); defaults 250 ms to 10 s. */
  readonly reconnect?: { readonly minMs?: number; readonly maxMs?: number };
  readonly WebSocket?: WebSocketConstructor;
  /**
   * `ws` (the default): a WebSocket. `sse`: `GET /events` and HTTP publishes. `auto`: a WebSocket, or streams
   * when the upgrade fails where HTTP works (a proxy that refuses WebSockets); the same API and resume either way.
   */
  readonly transport?: ClientTransport | 'auto';
  /** The fetch the `sse` transport uses (the global one by default). */
  readonly fetch?: typeof fetch;
  /** The connection's state, and the transport that carries it. */
  onState?(state: ConnectionState, transport: ClientTransport): void;
  onError?(error: PgwsError): void;
  /** A `ping` frame after this long without a frame from the server; no answer within it again means reconnect. Default 20 s. */
  readonly pingIntervalMs?: number;
}

/** A client bound to one server; `Channels` maps channel names to payload types. */
export interface Client<Channels extends Record<string, unknown>> {
  readonly state: ConnectionState;
  /** What carries the client now. */
  readonly transport: ClientTransport;
  /** Subscribes; throws if this client already has a subscription to the channel. */
  subscribe<Name extends keyof Channels & string>(
    channel: Name,
    options: SubscribeOptions<Channels[Name]>,
  ): Subscription;
  /** Publishes through PostgreSQL; resolves on `published`, rejects with a PgwsError. */
  publish<Name extends keyof Channels & string>(channel: Name, payload: Channels[Name]): Promise<void>;
  /** Ends the client for good; resolves once the socket has closed. */
  close(): Promise<void>;
}
