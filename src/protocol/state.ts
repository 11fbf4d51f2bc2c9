/**
 * What the protocol keeps per multiplexed socket, and the socket as the protocol sees it: a {@link Peer}
 * (the server's WebSocket through a few methods, so no rule here depends on Bun) and a {@link SessionState}
 * of plain data kept in the socket's `ws.data`. Shared by the session (`session.ts`) and its
 * subscriptions (`subscriptions.ts`).
 */

import type { Identity } from '../auth/tokens.ts';
import type { TraceSpan } from '../base/trace.ts';
import type { CloseLabel, Transport } from '../base/wire.ts';
import type { Entry as HeldEntry } from './history.ts';
import type { Membership } from './hub.ts';
import type { FrameId } from './replies.ts';

/** The socket as the protocol sees it. */
export interface Peer {
  send(text: string): unknown;
  /** Bytes queued for the client and not yet written. */
  buffered(): number;
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  /** Closes the socket with the cause's code; `text` replaces the cause's close text. */
  close(cause: CloseLabel, text?: string): void;
  /**
   * The socket speaks for `identity` from now on (undefined: anonymous): it closes with 4401 at the token's
   * `exp` plus the clock tolerance, unless called again, and a cut-off of its subject closes it with 4403
   * (at once, if a revocation already covers the token).
   */
  identify(identity: Identity | undefined): void;
}

/** Per-socket state, kept in the socket's data. */
export interface SessionState {
  /** How the client is connected, for the metrics: a WebSocket, a `GET /events` stream, one HTTP publish. */
  readonly transport: Transport;
  readonly subscriptions: Map<string, Entry>;
  /** Made at the first publish: most sockets never publish, and at 100,000 sockets each byte counts. */
  bucket: { take(): boolean } | undefined;
  /**
   * The socket's verified token; undefined while anonymous (public channels only, with `[auth]`). A socket
   * with an identity holds one of its subject's slots (`[auth] max_connections_per_subject`) until it closes.
   */
  identity: Identity | undefined;
  closed: boolean;
}

/**
 * A resume (or a `last`) being replayed: the next seq to send, after each drain when it did not fit the send
 * budget at once. On a durable channel whose cache does not reach back far enough, pages are read from the
 * table (`page`, while `reading` one) until the cache takes over.
 */
export interface Replay {
  readonly channel: string;
  readonly channelJson: string;
  readonly membership: Membership;
  /** The epoch the answer names: the stream's when the replay began, or after a wait for the reader. */
  epoch: string;
  next: number;
  /** Rows of the last page read from the table, not yet sent. */
  page: readonly HeldEntry[];
  /** A page is being read: drains wait for it. */
  reading: boolean;
  /** Messages sent so far (those a filter passed), for the replay's span. */
  sent: number;
  /** The replay's `pgws.replay` span, while tracing is on. */
  readonly span: TraceSpan | undefined;
}

/**
 * A subscribe waiting for its LISTEN. An unsubscribe meanwhile is held in `cancel` and answered after the
 * subscribe is, so every frame gets its one answer, in order.
 */
export interface Pending {
  readonly pending: true;
  cancel: { readonly id: FrameId | undefined } | undefined;
}

/** A subscription: waiting for its LISTEN, replaying history in parts, or live on its topic. */
export type Entry = Membership | Pending | { readonly replay: Replay };
