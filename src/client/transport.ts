/**
 * Which transport carries the client's next connection attempt: a WebSocket, or a stream socket (`stream.ts`:
 * `GET /events` and HTTP publishes behind the same frames). With `transport: "auto"`, a WebSocket that fails with
 * 1006 before it ever opens (all a browser learns of a refused upgrade, and of a server that is not there) is
 * followed at once by a stream socket; if that one opens, the server is reachable but the upgrade is not (a
 * proxy that refuses it), and the client stays on streams from then on. If it fails too, the server is away:
 * back to WebSockets, with the usual backoff.
 */

import type { ClientOptions, ClientTransport } from './api.ts';
import { openStreamSocket, type SocketLike } from './stream.ts';

/** The transport of the next attempt, and what `auto` has learnt so far. */
export interface Transports {
  readonly current: ClientTransport;
  /** Opens a socket of the current transport; a stream starts with the `initial` subscribe frames. */
  open(
    url: string,
    protocols: string[],
    token: string | undefined,
    initial: () => readonly Record<string, unknown>[],
  ): SocketLike;
  /** The socket opened (`ready`): `auto` keeps what carried it. */
  opened(): void;
  /** A socket closed with `code` before it opened: true when the next attempt should go at once, on the other transport. */
  failed(code: number): boolean;
}

/** Creates the choice for one client. */
export function createTransports(options: ClientOptions): Transports {
  const Socket = options.WebSocket ?? globalThis.WebSocket;
  // Bound: a browser's fetch called as another object's method throws "Illegal invocation".
  const fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  let current: ClientTransport = options.transport === 'sse' ? 'sse' : 'ws';
  let settled = options.transport !== 'auto';
  return {
    get current() {
      return current;
    },
    open(url, protocols, token, initial) {
      if (current === 'sse') return openStreamSocket({ url, token, initial: initial(), fetch });
      // Every member SocketLike names is a WebSocket's; only the handlers' types are wider there.
      return new Socket(url, protocols) as unknown as SocketLike;
    },
    opened() {
      settled = true;
    },
    failed(code) {
      if (settled || code !== 1006) return false;
      current = current === 'ws' ? 'sse' : 'ws';
      return current === 'sse';
    },
  };
}
