/**
 * What each socket carries in Bun's `ws.data`, in both modes, and what an accepted upgrade hands the server:
 * plain data that `upgrade.ts` fills and `server.ts` keeps.
 */
import type { Identity } from '../auth/tokens.ts';
import type { CloseLabel } from '../base/wire.ts';
import type { Peer, SessionState } from '../protocol/state.ts';
import type { ExpiryState } from './expiry.ts';
import type { Holder } from './subjects.ts';

/** What every socket carries. */
export interface Common {
  closedBy: CloseLabel | undefined;
  /** Its token's expiry timer (see `expiry.ts`). */
  expiry: ExpiryState['expiry'];
  deadline: number | undefined;
  /**
   * The topics this socket joined, so a sweep can find it and its close can leave them. An array: a socket
   * has a handful at most, and at 100,000 sockets a Set's own table is ~150 bytes each for nothing.
   */
  readonly topics: string[];
}
/** A plain channel socket. */
export interface PlainData extends Common {
  readonly mode: 'plain';
  readonly channel: string;
  /** The listener generation the socket was admitted under; a socket from an older one missed notifications. */
  readonly generation: number;
  /**
   * The token's identity, holding a slot of its subject until the socket closes (plain sockets cannot
   * refresh: they are closed at its `exp`); undefined on a public channel.
   */
  readonly identity: Identity | undefined;
  /** How a cut-off of the subject reaches the socket (set when it opens with an identity). */
  holder: Holder | undefined;
}
/** A multiplexed socket. */
export interface MultiplexedData extends Common {
  readonly mode: 'multiplexed';
  /**
   * The upgrade's token: verified (an identity holding a slot of its subject), refused (closed on open:
   * 4401, or 4429 when the subject holds its limit), or none (anonymous).
   */
  readonly offered:
    | { identity: Identity }
    | { refused: 'token_invalid' | 'token_expired' | 'subject_limit' }
    | undefined;
  peer: Peer | undefined;
  session: SessionState | undefined;
}
/** What Bun keeps in `ws.data`. */
export type SocketData = PlainData | MultiplexedData;
/** An accepted upgrade: the socket's data, the headers to answer with, and how to undo the admission. */
export interface Accepted {
  readonly data: SocketData;
  readonly headers?: Record<string, string>;
  /** Gives back what admission took (the connection slot, the LISTEN) when Bun's upgrade itself fails. */
  undo(): void;
}
