/**
 * The plain-mode test client (`ws://host/<channel>`): a WebSocket that can send headers (`Authorization`,
 * `Origin`) and records every frame and the close, so tests await events instead of sleeping; and a
 * refused-upgrade probe that sends the same headers. Multiplexed clients are `mux.ts`'s.
 */
import { within } from './wait.ts';

/** A connected client. `next()` resolves with the next unread frame. */
export interface TestClient extends Disposable {
  readonly socket: WebSocket;
  readonly messages: string[];
  readonly closed: Promise<{ code: number; reason: string }>;
  next(ms?: number): Promise<string>;
  /** Resolves once `count` frames in total have arrived. */
  received(count: number, ms?: number): Promise<string[]>;
}

/** How a plain client connects. */
export interface ConnectOptions {
  /** Request headers, e.g. `authorization` and `origin`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** How long opening may take. */
  readonly ms?: number;
}

/** Opens a socket; resolves on open, rejects if the upgrade fails or the server closes first. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<TestClient> {
  const socket = new WebSocket(url, options.headers === undefined ? {} : { headers: { ...options.headers } });
  const messages: string[] = [];
  let read = 0;
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const closed = Promise.withResolvers<{ code: number; reason: string }>();
  socket.onmessage = (event) => {
    messages.push(typeof event.data === 'string' ? event.data : String(event.data));
    for (const waiter of waiters.filter((w) => messages.length >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
  const opened = Promise.withResolvers<void>();
  socket.onopen = () => opened.resolve();
  socket.onerror = () => opened.reject(new Error(`WebSocket to ${url} failed to open`));
  socket.onclose = (event) => {
    opened.reject(new Error(`WebSocket to ${url} closed with ${event.code} before it opened`));
    closed.resolve({ code: event.code, reason: event.reason });
  };
  await within(opened.promise, options.ms ?? 5000, `the socket to ${url} to open`);
  const until = (count: number) =>
    messages.length >= count ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ count, resolve }));
  return {
    socket,
    messages,
    closed: closed.promise,
    async next(wait = 5000) {
      await within(until(read + 1), wait, `frame #${read + 1} on ${url}`);
      return messages[read++] as string;
    },
    async received(count, wait = 10_000) {
      await within(until(count), wait, `${count} frames on ${url} (have ${messages.length})`);
      return messages.slice(0, count);
    },
    [Symbol.dispose]() {
      socket.close();
    },
  };
}

/**
 * What an upgrade attempt that the server refuses gets back: a real handshake over fetch, with `headers`.
 * An upgrade that succeeds never resolves a fetch (101), so it fails here after `ms` instead of hanging.
 */
export async function upgradeStatus(
  url: string,
  headers: Readonly<Record<string, string>> = {},
  ms = 5000,
): Promise<{ status: number; body: string; retryAfter: string | null }> {
  const abort = new AbortController();
  try {
    const response = await within(
      fetch(url.replace(/^ws/, 'http'), {
        signal: abort.signal,
        headers: {
          upgrade: 'websocket',
          connection: 'Upgrade',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
          'sec-websocket-version': '13',
          ...headers,
        },
      }),
      ms,
      `a refusal of the upgrade to ${url.slice(0, 200)}`,
    );
    return { status: response.status, body: await response.text(), retryAfter: response.headers.get('retry-after') };
  } finally {
    abort.abort();
  }
}
