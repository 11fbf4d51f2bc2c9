/**
 * The pg-notify-ws client for browsers and Bun: one multiplexed `pgws.v1` socket, many subscriptions, and
 * reconnect, resume and gaps behind three callbacks. After any drop it reconnects with capped, jittered
 * backoff and resubscribes every channel with `since` its last position: a recovered resume delivers the
 * missed messages through `onMessage` exactly once; anything else calls `onGap`, the one signal that state
 * must be reloaded.
 *
 * No dependencies: the platform's WebSocket (or one passed in), timers and JSON. Served bundled at
 * `GET /client.js`; Bun and bundlers import this file directly (`pg-notify-ws/client`).
 */

import { backoffDelay } from '../db/backoff.ts';
import {
  type Client,
  type ClientOptions,
  type ConnectionState,
  type MessageMeta,
  PgwsError,
  type SubscribeOptions,
} from './api.ts';

export type {
  Client,
  ClientOptions,
  ConnectionState,
  GapInfo,
  MessageMeta,
  SubscribeOptions,
  Subscription,
  WebSocketConstructor,
} from './api.ts';
export { PgwsError } from './api.ts';

interface Sub {
  readonly channel: string;
  /** Answered `subscribed` on the current socket; publishes to the channel wait for it (see `sendPublish`). */
  live: boolean;
  /** Publishes made while the subscribe was unanswered, sent once it is. */
  readonly held: Pending[];
  readonly options: SubscribeOptions<unknown>;
  position: MessageMeta | undefined;
  retry: ReturnType<typeof setTimeout> | undefined;
  retries: number;
}

interface Pending {
  readonly channel: string;
  readonly payload: unknown;
  readonly resolve: () => void;
  readonly reject: (error: PgwsError) => void;
}

// Refresh this long before `exp` (or a fifth of the token's life, if shorter), so the new one lands in time.
const REFRESH_LEAD_MS = 30_000;

/** Creates a client and starts connecting. */
export function createClient<Channels extends Record<string, unknown> = Record<string, unknown>>(
  options: ClientOptions,
): Client<Channels> {
  const Socket = options.WebSocket ?? globalThis.WebSocket;
  const minMs = options.reconnect?.minMs ?? 250;
  const maxMs = Math.max(minMs, options.reconnect?.maxMs ?? 10_000);
  const pingIntervalMs = options.pingIntervalMs ?? 20_000;
  const subs = new Map<string, Sub>();
  const waiting: Pending[] = [];
  const inFlight = new Map<number, Pending>();
  let socket: WebSocket | undefined;
  let state: ConnectionState = 'connecting';
  let failures = 0;
  let nextId = 1;
  let ended = false;
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  let pingTimer: ReturnType<typeof setTimeout> | undefined;
  let awaitingPong = false;
  const closed = deferred();

  const setState = (next: ConnectionState) => {
    if (state === next) return;
    state = next;
    options.onState?.(next);
  };
  const report = (error: PgwsError, sub?: Sub) => (sub?.options.onError ?? options.onError)?.(error);
  const backoff = (attempt: number) => backoffDelay(attempt, minMs, maxMs, Math.random);
  const send = (frame: unknown) => {
    if (socket?.readyState === 1) socket.send(JSON.stringify(frame));
  };

  async function token(): Promise<string | undefined> {
    return typeof options.token === 'function' ? await options.token() : options.token;
  }

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
    const protocols = current === undefined ? ['pgws.v1'] : ['pgws.v1', `bearer.${current}`];
    const ws = new Socket(String(options.url), protocols);
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
      receive(frame);
    };
    ws.onclose = (event) => {
      if (socket === ws) lost(event.code, event.reason);
    };
  }

  function lost(code: number, reason: string): void {
    socket = undefined;
    clearTimeout(refreshTimer);
    clearTimeout(pingTimer);
    awaitingPong = false;
    for (const [id, pending] of inFlight) {
      inFlight.delete(id);
      pending.reject(
        new PgwsError('unavailable', 'the connection dropped before the publish was confirmed; not re-sent'),
      );
    }
    for (const sub of subs.values()) {
      clearTimeout(sub.retry);
      sub.live = false;
      // Never sent: they go out again once the next socket is open and the channel subscribed.
      waiting.push(...sub.held.splice(0));
    }
    if (ended) {
      setState('closed');
      closed.resolve();
      return;
    }
    if (code === 4401) report(new PgwsError('unauthorized', `the server refused the token: ${reason}`));
    scheduleReconnect();
  }

  function scheduleReconnect(): void {
    if (ended || reconnectTimer !== undefined) return;
    setState('connecting');
    reconnectTimer = setTimeout(() => void connect(), backoff(failures++));
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

  function subscribeFrame(sub: Sub): void {
    sub.live = false;
    send({
      type: 'subscribe',
      channel: sub.channel,
      ...(sub.position === undefined ? {} : { since: sub.position }),
      ...(sub.options.filter === undefined ? {} : { filter: sub.options.filter }),
    });
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
          if (fresh !== undefined) send({ type: 'auth', token: fresh });
        } catch (error) {
          report(new PgwsError('unavailable', `the token function failed: ${String(error)}`));
        }
      },
      Math.min(delay, 2 ** 31 - 1),
    );
  }

  function receive(frame: Record<string, unknown>): void {
    const channel = typeof frame['channel'] === 'string' ? frame['channel'] : '';
    const sub = subs.get(channel);
    switch (frame['type']) {
      case 'ready':
        scheduleRefresh(frame['expires']);
        if (state === 'open') return;
        failures = 0;
        setState('open');
        for (const each of subs.values()) subscribeFrame(each);
        for (const pending of waiting.splice(0)) sendPublish(pending);
        return;
      case 'subscribed': {
        if (sub === undefined) return;
        sub.retries = 0;
        const epoch = String(frame['epoch']);
        const seq = Number(frame['seq']);
        const recovered = frame['recovered'];
        sub.position = { epoch, seq };
        sub.live = true;
        if (recovered === false) sub.options.onGap?.({ channel, epoch, seq, reason: 'not_recovered' });
        for (const pending of sub.held.splice(0)) sendPublish(pending);
        return;
      }
      case 'message': {
        const seq = Number(frame['seq']);
        // A message at or before the position was already delivered (a resume never repeats, but be sure).
        if (sub?.position === undefined || seq <= sub.position.seq) return;
        sub.position = { epoch: sub.position.epoch, seq };
        sub.options.onMessage(frame['payload'], sub.position);
        return;
      }
      case 'gap': {
        if (sub === undefined) return;
        const epoch = String(frame['epoch']);
        const seq = Number(frame['seq']);
        sub.position = { epoch, seq };
        sub.options.onGap?.({ channel, epoch, seq, reason: 'gap' });
        return;
      }
      case 'unsubscribed':
        if (frame['reason'] === 'forbidden' && sub !== undefined) {
          subs.delete(channel);
          report(new PgwsError('forbidden', `the token no longer allows "${channel}"`, { channel }), sub);
        }
        return;
      case 'published':
        settle(frame['id'], undefined);
        return;
      case 'error':
        failed(frame, sub);
        return;
    }
  }

  function settle(id: unknown, error: PgwsError | undefined): void {
    if (typeof id !== 'number') return;
    const pending = inFlight.get(id);
    if (pending === undefined) return;
    inFlight.delete(id);
    if (error === undefined) pending.resolve();
    else pending.reject(error);
  }

  function failed(frame: Record<string, unknown>, sub: Sub | undefined): void {
    const code = String(frame['code']);
    const channel = typeof frame['channel'] === 'string' ? frame['channel'] : undefined;
    const issues = Array.isArray(frame['issues']) ? (frame['issues'] as PgwsError['issues']) : undefined;
    const error = new PgwsError(code, String(frame['message']), {
      ...(channel === undefined ? {} : { channel }),
      ...(issues === undefined ? {} : { issues }),
    });
    if (typeof frame['id'] === 'number' && inFlight.has(frame['id'])) {
      settle(frame['id'], error);
      return;
    }
    if (sub === undefined) {
      report(error);
      return;
    }
    if (code === 'unavailable') {
      // The database is away: try this subscription again with the reconnect backoff, keeping `since`.
      sub.retry = setTimeout(() => subs.get(sub.channel) === sub && subscribeFrame(sub), backoff(sub.retries++));
      return;
    }
    if (code === 'already_subscribed') return;
    subs.delete(sub.channel);
    for (const pending of sub.held.splice(0)) sendPublish(pending);
    report(error, sub);
  }

  // A publisher subscribed to the channel gets its own message back: the publish waits until the
  // subscribe is answered (LISTENed), or pg_notify could commit before the LISTEN and the message be missed.
  function sendPublish(pending: Pending): void {
    const sub = subs.get(pending.channel);
    if (sub !== undefined && !sub.live) {
      sub.held.push(pending);
      return;
    }
    const id = nextId++;
    inFlight.set(id, pending);
    send({ type: 'publish', id, channel: pending.channel, payload: pending.payload });
  }

  void connect();

  return {
    get state() {
      return state;
    },
    subscribe(channel, subscribeOptions) {
      if (ended) throw new PgwsError('closed', 'the client is closed');
      if (subs.has(channel)) throw new PgwsError('already_subscribed', `already subscribed to "${channel}"`);
      const sub: Sub = {
        channel,
        options: subscribeOptions as SubscribeOptions<unknown>,
        position: undefined,
        retry: undefined,
        retries: 0,
        live: false,
        held: [],
      };
      subs.set(channel, sub);
      if (state === 'open') subscribeFrame(sub);
      return {
        unsubscribe() {
          if (subs.get(channel) !== sub) return;
          subs.delete(channel);
          clearTimeout(sub.retry);
          if (state === 'open') send({ type: 'unsubscribe', channel });
          for (const pending of sub.held.splice(0)) {
            if (state === 'open') sendPublish(pending);
            else waiting.push(pending);
          }
        },
      };
    },
    publish(channel, payload) {
      if (ended) return Promise.reject(new PgwsError('closed', 'the client is closed'));
      const done = deferred();
      const pending: Pending = {
        channel,
        payload,
        resolve: done.resolve,
        reject: done.reject,
      };
      if (state === 'open') sendPublish(pending);
      else waiting.push(pending);
      return done.promise;
    },
    close() {
      if (ended) return closed.promise;
      ended = true;
      clearTimeout(reconnectTimer);
      clearTimeout(refreshTimer);
      clearTimeout(pingTimer);
      for (const sub of subs.values()) clearTimeout(sub.retry);
      const error = new PgwsError('closed', 'the client was closed');
      for (const pending of waiting.splice(0)) pending.reject(error);
      for (const sub of subs.values()) for (const pending of sub.held.splice(0)) pending.reject(error);
      for (const [id, pending] of inFlight) {
        inFlight.delete(id);
        pending.reject(error);
      }
      if (socket === undefined) {
        setState('closed');
        closed.resolve();
      } else {
        socket.close(1000, 'client closed');
      }
      return closed.promise;
    },
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: PgwsError) => void } {
  let resolve!: () => void;
  let reject!: (error: PgwsError) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
