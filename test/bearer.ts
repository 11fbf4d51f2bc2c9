/**
 * A WebSocket client for the authorization tests: it can send headers (`Authorization`, `Origin`) and
 * offer subprotocols (`pgws.v1`, `bearer.<token>`), records every frame and when the socket closed, so
 * tests await events; and a refused-upgrade probe that sends the same headers.
 */
import { within } from './harness.ts';

/** A parsed pgws.v1 frame. */
export type Frame = { readonly type: string } & Readonly<Record<string, unknown>>;

/** How the client connects. */
export interface SocketOptions {
  readonly protocols?: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
}

/** An open socket. `text()`/`frame()` read the next unread frame in order. */
export interface BearerSocket extends Disposable {
  readonly socket: WebSocket;
  /** The subprotocol the server selected (`''` for none). */
  readonly protocol: string;
  readonly texts: readonly string[];
  /** Resolves with the close code, reason and `Date.now()` when the close event fired. */
  readonly closed: Promise<{ code: number; reason: string; at: number }>;
  text(ms?: number): Promise<string>;
  frame(ms?: number): Promise<Frame>;
  /** Reads frames until one of `type` (skipping others) and returns it. */
  until(type: string, ms?: number): Promise<Frame>;
  send(frame: object): void;
}

/** Opens `url`; resolves on open, rejects when the server refuses or closes first. */
export async function openSocket(url: string, options: SocketOptions = {}, ms = 5000): Promise<BearerSocket> {
  const socket = new WebSocket(url, {
    ...(options.protocols === undefined ? {} : { protocols: [...options.protocols] }),
    ...(options.headers === undefined ? {} : { headers: { ...options.headers } }),
  });
  const texts: string[] = [];
  let read = 0;
  let wake = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<{ code: number; reason: string; at: number }>();
  socket.onmessage = (event) => {
    texts.push(String(event.data));
    wake.resolve();
    wake = Promise.withResolvers();
  };
  const opened = Promise.withResolvers<void>();
  socket.onopen = () => opened.resolve();
  socket.onerror = () => opened.reject(new Error(`WebSocket to ${url} failed to open`));
  socket.onclose = (event) => {
    opened.reject(new Error(`WebSocket to ${url} closed before it opened (${event.code})`));
    closed.resolve({ code: event.code, reason: event.reason, at: Date.now() });
    wake.resolve();
  };
  await within(opened.promise, ms, `the socket to ${url} to open`);
  let ended = false;
  void closed.promise.then(() => {
    ended = true;
  });
  const text = async (wait = 5000): Promise<string> => {
    const deadline = Date.now() + wait;
    while (read >= texts.length) {
      if (ended) throw new Error(`the socket closed before frame #${read + 1} (${texts.length} received)`);
      await within(wake.promise, Math.max(1, deadline - Date.now()), `frame #${read + 1} on ${url}`);
    }
    return texts[read++] as string;
  };
  const frame = async (wait?: number) => JSON.parse(await text(wait)) as Frame;
  return {
    socket,
    protocol: socket.protocol,
    texts,
    closed: closed.promise,
    text,
    frame,
    async until(type, wait = 5000) {
      const deadline = Date.now() + wait;
      for (;;) {
        const next = await frame(Math.max(1, deadline - Date.now()));
        if (next.type === type) return next;
      }
    },
    send: (value) => socket.send(JSON.stringify(value)),
    [Symbol.dispose]() {
      socket.close();
    },
  };
}

/** The multiplexed endpoint of a bridge at `base`, with `pgws.v1` offered first and `extra` after it. */
export function openMux(base: URL, extra: SocketOptions = {}, query = ''): Promise<BearerSocket> {
  return openSocket(`ws://${base.host}/${query}`, {
    ...extra,
    protocols: ['pgws.v1', ...(extra.protocols ?? [])],
  });
}

/**
 * A refused upgrade: a real handshake over fetch with `headers`, and what came back. An upgrade that
 * succeeds never resolves a fetch (101), so it fails here after `ms` instead of hanging.
 */
export async function refusal(url: string, headers: Readonly<Record<string, string>> = {}, ms = 5000) {
  const response = await fetch(url.replace(/^ws/, 'http'), {
    signal: AbortSignal.timeout(ms),
    headers: {
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
      ...headers,
    },
  });
  return { status: response.status, body: await response.text() };
}
