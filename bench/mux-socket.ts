/**
 * A `pgws.v1` client for the orchestrator process (bench/replay.ts): one socket on the multiplexed
 * endpoint, a subscribe and its answer, and the frames that follow, timed with this process's clock.
 * The generators have their own, leaner one (bench/clients.ts), built for a thousand sockets at once.
 */
import { SUBPROTOCOL } from '../src/http/offer.ts';

/** A `pgws.v1` socket in this process: open once `ready` came; every later frame goes to `onFrame`. */
export interface MuxSocket {
  send(frame: object): void;
  onFrame: (text: string) => void;
  close(): Promise<void>;
}

/** Rejects after `ms` with what was being waited for; the timer never outlives the wait. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens a socket on the multiplexed endpoint and resolves once its `ready` frame came (10 s at most). */
export async function openSocket(url: string): Promise<MuxSocket> {
  const ready = Promise.withResolvers<void>();
  const gone = Promise.withResolvers<void>();
  const ws = new WebSocket(url, [SUBPROTOCOL]);
  const socket: MuxSocket = {
    send: (frame) => ws.send(JSON.stringify(frame)),
    onFrame: () => {},
    async close() {
      ws.close(1000);
      await within(gone.promise, 5000, 'close');
    },
  };
  ws.onmessage = (event: MessageEvent) => {
    const text = event.data as string;
    if (text.startsWith('{"type":"ready"')) return ready.resolve();
    socket.onFrame(text);
  };
  ws.onclose = (event: CloseEvent) => {
    ready.reject(new Error(`socket closed before ready (code ${event.code})`));
    gone.resolve();
  };
  ws.onerror = () => {};
  try {
    await within(ready.promise, 10_000, 'ready frame');
  } catch (error) {
    ws.close();
    throw error;
  }
  return socket;
}

/**
 * Sends a subscribe frame: `answer` resolves with the `subscribed` answer (and when it came), `done`
 * when `count` message frames have gone into `collect` (at that moment). Anything else is an error.
 */
export function subscribe(socket: MuxSocket, frame: object, count: number, collect: string[]) {
  const answer = Promise.withResolvers<{ epoch: string; seq: number; recovered?: boolean; atMs: number }>();
  const done = Promise.withResolvers<number>();
  socket.onFrame = (text) => {
    if (text.startsWith('{"type":"message"')) {
      collect.push(text);
      if (collect.length === count) done.resolve(performance.now());
      return;
    }
    const parsed = JSON.parse(text) as { type: string; epoch: string; seq: number; recovered?: boolean };
    if (parsed.type === 'subscribed') answer.resolve({ ...parsed, atMs: performance.now() });
    else answer.reject(new Error(`unexpected frame ${text.slice(0, 200)}`));
  };
  socket.send(frame);
  return { answer: answer.promise, done: done.promise };
}
