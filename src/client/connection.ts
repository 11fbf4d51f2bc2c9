/**
 * The client's one socket: connecting with the token as a `bearer.` subprotocol, reconnecting with capped,
 * jittered backoff after any drop (how, after each close code, is `closes.ts`'s), the `ready` handshake that
 * makes the client open, token refresh before `exp`, and the `ping` frames that find a dead link. What travels
 * over the socket is the other files' business: they hear of it through {@link ConnectionEvents}. The socket
 * is a WebSocket or a stream socket; `transport.ts` says which.
 */

import { type ClientOptions, type ClientTransport, type ConnectionState, PgwsError } from './api.ts';
import { afterClose, type Comeback, reconnectDelay } from './closes.ts';
import type { SocketLike } from './stream.ts';
import { createTransports } from './transport.ts';

/** What the socket tells the rest of the client. */
export interface ConnectionEvents {
  /** The server said `ready` on a new socket: subscribe again, send what waited. */
  opened(): void;
  /** Any frame but `ready`, parsed; frames that are not JSON are dropped before this. */
  frame(frame: Record<string, unknown>): void;
  /** The socket is gone (or `close()` began): nothing sent on it will be answered. */
  dropped(): void;
  /** The client is over, by `close()` or because it cannot go on: reject whatever waits with `error`. */
  ended(error: PgwsError): void;
  /** The subscribe frames a new socket starts with (a stream names its channels in its request). */
  initial(): readonly Record<string, unknown>[];
}

/** The socket as the subscriptions and requests use it. */
export interface Connection {
  readonly state: ConnectionState;
  /** What carries the client now (or will, on its next attempt). */
  readonly transport: ClientTransport;
  /** `close()` was called: the client is over, even while its socket is still closing. */
  readonly ended: boolean;
  /** Sends a frame if the socket is open; otherwise drops it (a reconnect resends what matters). */
  send(frame: unknown): void;
  /** The reconnect backoff for the `attempt`th retry, also used to retry a subscribe. */
  backoff(attempt: number): number;
  /** Hands an error that belongs to no subscription to the client's `onError`. */
  report(error: PgwsError): void;
  /** Starts connecting; called once, when the receivers of the events exist. */
  start(): void;
  /** Ends for good: stops the timers, rejects what waits (`ended`), closes the socket. */
  close(): Promise<void>;
}

// Refresh this long before `exp` (or a fifth of the token's life, if shorter), so the new one lands in time.
const REFRESH_LEAD_MS = 30_000;

/** Creates the connection, idle until `start()`. */
export function createConnection(options: ClientOptions, events: ConnectionEvents): Connection {
  const transports = createTransports(options);
  const minMs = options.reconnect?.minMs ?? 250;
  const maxMs = Math.max(minMs, options.reconnect?.maxMs ?? 10_000);
  const pingIntervalMs = options.pingIntervalMs ?? 20_000;
  let socket: SocketLike | undefined;
  let state: ConnectionState = 'connecting';
  let failures = 0;
  let ended = false;
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  let pingTimer: ReturnType<typeof setTimeout> | undefined;
  let awaitingPong = false;
  // The token the current socket speaks with, and the one the server cut off (4403), never to be sent again.
  let inUse: string | undefined;
  let cutOff: string | undefined;
  let closedNow!: () => void;
  const closed = new Promise<void>((resolve) => {
    closedNow = resolve;
  });

  const setState = (next: ConnectionState) => {
    if (state === next) return;
    state = next;
    options.onState?.(next, transports.current);
  };
  const report = (error: PgwsError) => options.onError?.(error);
  const backoff = (attempt: number, comeback: Comeback = 'retry') =>
    reconnectDelay(comeback, attempt, minMs, maxMs, Math.random);
  const send = (frame: unknown) => {
    if (socket?.readyState === 1) socket.send(JSON.stringify(frame));
  };
  const token = async () => (typeof options.token === 'function' ? await options.token() : options.token);

  async function connect(): Promise<void> {
    reconnectTimer = undefined;
    setState('connecting');
    let current: string | undefined;
    try {
      current = await token();
    } catch (error) {
      report(new PgwsError('unavailable', `the token function failed: ${String(error)}`));
      return scheduleReconnect();
    }
    if (ended) return;
    if (cutOff !== undefined && current === cutOff) {
      const error = new PgwsError('cut_off', 'the token function gave the token the server cut off again; stopping');
      report(error);
      return stop(error);
    }
    cutOff = undefined;
    inUse = current;
    const protocols = current === undefined ? ['pgws.v1'] : ['pgws.v1', `bearer.${current}`];
    const ws = transports.open(String(options.url), protocols, current, events.initial);
    socket = ws;
    ws.onmessage = (event) => {
      if (socket !== ws) return;
      keepAlive();
      let frame: Record<string, unknown>;
      try {
        frame = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (frame['type'] === 'ready') ready(frame['expires']);
      else events.frame(frame);
    };
    ws.onclose = (event) => {
      if (socket === ws) lost(event.code, event.reason);
    };
  }

  function ready(expires: unknown): void {
    scheduleRefresh(expires);
    // A `ready` on an open socket answers a token refresh: nothing to redo.
    if (state === 'open') return;
    failures = 0;
    transports.opened();
    setState('open');
    events.opened();
  }

  function lost(code: number, reason: string): void {
    socket = undefined;
    clearTimeout(refreshTimer);
    clearTimeout(pingTimer);
    awaitingPong = false;
    events.dropped();
    if (ended) {
      setState('closed');
      closedNow();
      return;
    }
    // `auto`: a socket that never opened may be the upgrade refused; a stream goes next, at once.
    if (state === 'connecting' && transports.failed(code)) return void connect();
    const after = afterClose(code, reason);
    if (after.error !== undefined) report(after.error);
    if (after.comeback === 'new_token') {
      // A fixed token cannot be replaced: the client stops rather than be cut off again and again.
      if (typeof options.token !== 'function') {
        stop(after.error ?? new PgwsError('cut_off', reason));
        return;
      }
      cutOff = inUse;
    }
    scheduleReconnect(after.comeback);
  }

  function scheduleReconnect(comeback: Comeback = 'retry'): void {
    if (ended || reconnectTimer !== undefined) return;
    setState('connecting');
    reconnectTimer = setTimeout(() => void connect(), backoff(failures++, comeback));
  }

  function clearTimers(): void {
    clearTimeout(reconnectTimer);
    clearTimeout(refreshTimer);
    clearTimeout(pingTimer);
  }

  /** Ends the client without a socket to close: it cannot go on. */
  function stop(error: PgwsError): void {
    ended = true;
    clearTimers();
    events.ended(error);
    setState('closed');
    closedNow();
  }

  // Browsers cannot send WebSocket pings: a `ping` frame after a silence, and a reconnect if nothing answers.
  function keepAlive(): void {
    clearTimeout(pingTimer);
    awaitingPong = false;
    pingTimer = setTimeout(function check() {
      if (awaitingPong) {
        const dead = socket;
        lost(1006, 'no answer to ping');
        dead?.close();
        return;
      }
      awaitingPong = true;
      send({ type: 'ping' });
      pingTimer = setTimeout(check, pingIntervalMs);
    }, pingIntervalMs);
  }

  function scheduleRefresh(expires: unknown): void {
    clearTimeout(refreshTimer);
    if (typeof options.token !== 'function' || typeof expires !== 'number') return;
    const left = expires * 1000 - Date.now();
    const delay = Math.max(0, left - Math.min(REFRESH_LEAD_MS, left / 5));
    refreshTimer = setTimeout(
      async () => {
        try {
          const fresh = await token();
          if (fresh === undefined || socket?.readyState !== 1) return;
          inUse = fresh;
          send({ type: 'auth', token: fresh });
        } catch (error) {
          report(new PgwsError('unavailable', `the token function failed: ${String(error)}`));
        }
      },
      // setTimeout holds a signed 32-bit delay; a longer one would fire at once.
      Math.min(delay, 2 ** 31 - 1),
    );
  }

  return {
    get state() {
      return state;
    },
    get transport() {
      return transports.current;
    },
    get ended() {
      return ended;
    },
    send,
    backoff,
    report,
    start() {
      void connect();
    },
    close() {
      if (ended) return closed;
      ended = true;
      clearTimers();
      events.ended(new PgwsError('closed', 'the client was closed'));
      if (socket === undefined) {
        setState('closed');
        closedNow();
      } else {
        socket.close(1000, 'client closed');
      }
      return closed;
    },
  };
}
