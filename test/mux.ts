/**
 * The test client of the multiplexed protocol `pgws.v1` (docs/PROTOCOL.md), the only one in test/: a real
 * WebSocket on `/` that can offer subprotocols (`bearer.<token>` too) and send headers (`Authorization`,
 * `Origin`), records every server frame, parsed, and its close, so tests wait on frames instead of
 * sleeping. Every wait has a named timeout and fails at once, with the close code, if the server closes
 * the socket meanwhile. It imports nothing of the bridge, so bench/ can use it to check correctness.
 */
import { exchange, upgradeRequest } from './fuzz/frames.ts';
import { within } from './wait.ts';

/** The subprotocol a multiplexed client offers (the contract's literal, not imported from src/). */
export const SUBPROTOCOL = 'pgws.v1';

/** A server frame as parsed. A text that is not a JSON object is kept as `{ type: '(not a JSON object)' }`. */
export interface Frame {
  readonly type: string;
  readonly id?: string | number;
  readonly channel?: string;
  readonly epoch?: string;
  readonly seq?: number;
  readonly recovered?: boolean;
  readonly payload?: unknown;
  readonly code?: string;
  readonly message?: string;
  readonly reason?: string;
  readonly issues?: readonly { readonly path: string; readonly message: string }[];
  readonly subject?: string | null;
  readonly expires?: number | null;
  readonly text?: string;
}

/** What `next` looks for: a frame type, one of several types, or any test of a frame. */
export type Match = string | readonly string[] | ((frame: Frame) => boolean);

/** A resume position, as `since` carries it. */
export interface Position {
  readonly epoch: string;
  readonly seq: number;
}

/** How a client connects. */
export interface MuxOptions {
  /** The subprotocols offered, in order (default: only `pgws.v1`). */
  readonly protocols?: readonly string[];
  /** A token offered as the subprotocol `bearer.<token>`, after `protocols`. */
  readonly bearer?: string;
  /** Request headers, e.g. `authorization` and `origin`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** What follows `/` in the URL, e.g. `?token=…`. */
  readonly query?: string;
  /** How long opening (and, for `connectMux`, the first frame) may take. */
  readonly ms?: number;
}

/** The close of a socket, as the client saw it. */
export interface Closed {
  readonly code: number;
  readonly reason: string;
}

/** A multiplexed client. */
export interface MuxClient extends Disposable {
  readonly socket: WebSocket;
  /** The subprotocol the server selected. */
  readonly protocol: string;
  /** Every server frame so far, in arrival order. */
  readonly frames: Frame[];
  /** Every server frame's text, for checks on the exact bytes. */
  readonly texts: string[];
  readonly closed: Promise<Closed>;
  /**
   * The next frame after the previous `next` that matches (any frame when `match` is absent); frames it
   * passes over stay in `frames`. Rejects, naming what it waited for, after `ms` or when the socket closes.
   */
  next(match?: Match, ms?: number): Promise<Frame>;
  /** Resolves once `check(frames)` holds. */
  until(check: (frames: readonly Frame[]) => boolean, ms: number, what: string): Promise<void>;
  send(frame: object): void;
  sendText(text: string): void;
  /** Resolves with the first answer (any frame but a message) echoing `id`, wherever it is in `frames`. */
  answer(id: string | number, ms?: number): Promise<Frame>;
  /** Sends `frame` with a fresh `id` (unless it has one) and resolves with the first answer echoing it. */
  request(frame: Record<string, unknown>, ms?: number): Promise<Frame>;
  /** Subscribes (or resumes, with `since`); resolves with `subscribed`, throws with any other answer. */
  subscribe(channel: string, options?: { since?: Position; filter?: unknown }, ms?: number): Promise<Frame>;
  /** The `message` frames on `channel` so far. */
  messages(channel: string): Frame[];
  /** Resolves with the first `count` messages on `channel` once they have arrived. */
  received(channel: string, count: number, ms?: number): Promise<Frame[]>;
}

let ids = 0;

/** The multiplexed endpoint of a bridge at `base` (its http:// URL), with `query` after the `/`. */
export const muxUrl = (base: URL | string, query = '') => {
  const url = new URL(`/${query}`, base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
};

const matcher = (match: Match | undefined): [test: (frame: Frame) => boolean, what: string] => {
  if (match === undefined) return [() => true, 'the next frame'];
  if (typeof match === 'function') return [match, 'a matching frame'];
  const types: readonly string[] = typeof match === 'string' ? [match] : match;
  return [(frame) => types.includes(frame.type), `a ${types.map((type) => `"${type}"`).join(' or ')} frame`];
};

/**
 * Opens a multiplexed socket and resolves once it is open, before any frame: for tests of what the
 * server sends first, or of a close that comes instead (4401).
 */
export async function openMux(base: URL | string, options: MuxOptions = {}): Promise<MuxClient> {
  const url = muxUrl(base, options.query);
  const ms = options.ms ?? 5000;
  const protocols = [
    ...(options.protocols ?? [SUBPROTOCOL]),
    ...(options.bearer === undefined ? [] : [`bearer.${options.bearer}`]),
  ];
  const socket = new WebSocket(url, {
    protocols,
    ...(options.headers === undefined ? {} : { headers: { ...options.headers } }),
  });
  const frames: Frame[] = [];
  const texts: string[] = [];
  const waiters = new Set<{ check: () => boolean; resolve: () => void; reject: (error: Error) => void }>();
  let closedWith: Closed | undefined;
  const closed = Promise.withResolvers<Closed>();
  const settle = () => {
    for (const waiter of waiters) {
      if (waiter.check()) {
        waiters.delete(waiter);
        waiter.resolve();
      } else if (closedWith !== undefined) {
        waiters.delete(waiter);
        waiter.reject(new Error(`the socket closed with ${closedWith.code} ${JSON.stringify(closedWith.reason)}`));
      }
    }
  };
  socket.onmessage = (event) => {
    const text = typeof event.data === 'string' ? event.data : `(binary ${String(event.data)})`;
    texts.push(text);
    frames.push(parse(text));
    settle();
  };
  const opened = Promise.withResolvers<void>();
  socket.onopen = () => opened.resolve();
  socket.onerror = () => opened.reject(new Error(`WebSocket to ${url} failed to open`));
  socket.onclose = (event) => {
    opened.reject(new Error(`WebSocket to ${url} closed with ${event.code} before it opened`));
    closedWith = { code: event.code, reason: event.reason };
    closed.resolve(closedWith);
    settle();
  };
  await within(opened.promise, ms, `the multiplexed socket to ${url} to open`);

  const until = (check: (frames: readonly Frame[]) => boolean, wait: number, what: string) => {
    const done = Promise.withResolvers<void>();
    const waiter = { check: () => check(frames), resolve: done.resolve, reject: done.reject };
    waiters.add(waiter);
    settle();
    return within(done.promise, wait, what).finally(() => waiters.delete(waiter));
  };
  let read = 0;
  const next = async (match?: Match, wait = 5000) => {
    const [test, what] = matcher(match);
    const found = () => frames.findIndex((frame, index) => index >= read && test(frame));
    await until(() => found() !== -1, wait, `${what} after frame #${read} on ${url}`);
    const index = found();
    read = index + 1;
    return frames[index] as Frame;
  };
  const send = (frame: object) => socket.send(JSON.stringify(frame));
  const answerFrom = async (from: number, id: unknown, wait: number, what: string) => {
    const found = () => frames.findIndex((f, index) => index >= from && f.id === id && f.type !== 'message');
    await until(() => found() !== -1, wait, what);
    return frames[found()] as Frame;
  };
  const request = (frame: Record<string, unknown>, wait = 5000) => {
    const id = frame['id'] ?? `r${++ids}`;
    const from = frames.length;
    send({ ...frame, id });
    return answerFrom(from, id, wait, `the answer to ${JSON.stringify({ ...frame, id }).slice(0, 200)}`);
  };
  const messages = (channel: string) => frames.filter((f) => f.type === 'message' && f.channel === channel);

  return {
    socket,
    protocol: socket.protocol,
    frames,
    texts,
    closed: closed.promise,
    next,
    until,
    send,
    sendText: (text) => socket.send(text),
    answer: (id, wait = 5000) => answerFrom(0, id, wait, `the answer echoing id ${JSON.stringify(id)}`),
    request,
    async subscribe(channel, options = {}, wait = 5000) {
      const answer = await request({ type: 'subscribe', channel, ...options }, wait);
      if (answer.type !== 'subscribed') throw new Error(`subscribe ${channel} answered ${JSON.stringify(answer)}`);
      return answer;
    },
    messages,
    async received(channel, count, wait = 10_000) {
      await until(
        () => messages(channel).length >= count,
        wait,
        `${count} messages on ${channel} (have ${messages(channel).length})`,
      );
      return messages(channel).slice(0, count);
    },
    [Symbol.dispose]() {
      socket.close();
    },
  };
}

/** Opens a multiplexed socket and reads its first frame (the contract says: `ready`), as most tests need. */
export async function connectMux(base: URL | string, options: MuxOptions = {}): Promise<MuxClient> {
  const client = await openMux(base, options);
  try {
    await client.next(undefined, options.ms ?? 5000);
  } catch (error) {
    client.socket.close();
    throw error;
  }
  return client;
}

/** Parses a server frame's text; anything but a JSON object with a type is kept as `(not a JSON object)`. */
export function parse(text: string): Frame {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && 'type' in value) return value as Frame;
  } catch {}
  return { type: '(not a JSON object)', text };
}

/**
 * A handshake over raw TCP, to read what a browser hides: the status and the response headers
 * (lower-cased names) of an upgrade on `path` offering `protocols` (no header when undefined).
 */
export async function handshake(
  base: URL,
  path: string,
  protocols: string | undefined,
): Promise<{ status: number | undefined; headers: Map<string, string> }> {
  const host = base.hostname;
  const port = Number(base.port);
  const request = upgradeRequest(path, `${host}:${port}`, { 'Sec-WebSocket-Protocol': protocols });
  const result = await exchange(host, port, {
    request: [Buffer.from(request)],
    frames: [],
    cleanClose: true,
    fin: true,
  });
  const head = result.response.subarray(0, result.response.indexOf('\r\n\r\n')).toString('latin1');
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: result.status, headers };
}
