/**
 * A WebSocket test client that records every frame and the close, so tests await events instead of
 * sleeping.
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

/** Opens a socket; resolves on open, rejects if the upgrade fails. */
export async function connect(url: string, ms = 5000): Promise<TestClient> {
  const socket = new WebSocket(url);
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
  socket.onclose = (event) => closed.resolve({ code: event.code, reason: event.reason });
  const opened = new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error(`WebSocket to ${url} failed to open`));
  });
  await within(opened, ms, `the socket to ${url} to open`);
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

/** The HTTP status of an upgrade attempt that the server refuses (a real handshake over fetch). */
export async function upgradeStatus(url: string): Promise<{ status: number; body: string; retryAfter: string | null }> {
  const response = await fetch(url.replace(/^ws/, 'http'), {
    headers: {
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
    },
  });
  return { status: response.status, body: await response.text(), retryAfter: response.headers.get('retry-after') };
}
