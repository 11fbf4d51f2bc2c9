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

/** What a UI shows: connecting (or reconnecting), open, or closed for good by `close()`. */
export type ConnectionState = 'connecting' | 'open' | 'closed';

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

/** An error from the server or the client; `code` is the protocol's error code (or `closed`, `unavailable`). */
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

/** Callbacks of one subscription. */
export interface SubscribeOptions<Payload> {
  /** Conditions on the payload (see the README's Filters); only schema channels take one. */
  readonly filter?: Readonly<Record<string, unknown>>;
  onMessage(payload: Payload, meta: MessageMeta): void;
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
  /** A token, or a function returning one (or a promise of one), called on every connect and before `exp`. */
  readonly token?: string | (() => string | Promise<string>);
  /** Reconnect backoff bounds (full jitter); defaults 250 ms to 10 s. */
  readonly reconnect?: { readonly minMs?: number; readonly maxMs?: number };
  readonly WebSocket?: WebSocketConstructor;
  onState?(state: ConnectionState): void;
  onError?(error: PgwsError): void;
  /** A `ping` frame after this long without a frame from the server; no answer within it again means reconnect. Default 20 s. */
  readonly pingIntervalMs?: number;
}

/** A client bound to one server; `Channels` maps channel names to payload types. */
export interface Client<Channels extends Record<string, unknown>> {
  readonly state: ConnectionState;
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

interface Sub {
  readonly channel: string;
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
  const backoff = (attempt: number) =>
    minMs + Math.random() * (Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20)) - minMs);
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
    for (const sub of subs.values()) clearTimeout(sub.retry);
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
        if (recovered === false) sub.options.onGap?.({ channel, epoch, seq, reason: 'not_recovered' });
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
    report(error, sub);
  }

  function sendPublish(pending: Pending): void {
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
      };
      subs.set(channel, sub);
      if (state === 'open') subscribeFrame(sub);
      return {
        unsubscribe() {
          if (subs.get(channel) !== sub) return;
          subs.delete(channel);
          clearTimeout(sub.retry);
          if (state === 'open') send({ type: 'unsubscribe', channel });
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
