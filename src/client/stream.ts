/**
 * The client's second transport: `GET /events` for what arrives and `POST /channels/C/messages` for publishes,
 * behind the same few members of a WebSocket that `connection.ts` uses, speaking the same pgws.v1 frames. So the
 * subscriptions and publishes above it are the same code whichever transport carries them.
 *
 * A stream names its channels in its URL: the socket opens one with the subscriptions it starts with, and opens
 * it again (at the end of the turn, so a burst of subscribes is one request) when a subscribe or unsubscribe
 * changes the set, or a refreshed token arrives. The new stream resumes with a cursor built from the positions
 * this socket saw (`../base/cursor.ts`): exact on channels with history, `recovered: false` where a message fell
 * between the two requests on a channel without it, never silent. The response is read with `fetch`, not
 * `EventSource`, which can send neither a token nor a cursor of our choosing.
 */

import { type CursorPosition, encodeCursor } from '../base/cursor.ts';
import { expiresOf, readEvents } from './sse.ts';

/** What `connection.ts` uses of a socket; a WebSocket has all of it. */
export interface SocketLike {
  readonly readyState: number;
  send(text: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
}

/** How to open a stream socket. */
export interface StreamSocketOptions {
  /** The multiplexed endpoint's URL (`ws://host:8080/`): the HTTP endpoints are beside it. */
  readonly url: string;
  readonly token: string | undefined;
  /** The subscribe frames it starts with. */
  readonly initial: readonly Record<string, unknown>[];
  readonly fetch: typeof fetch;
}

/** Opens a stream socket; it answers `ready` once its first stream (or, with no channels, `/readyz`) answers 200. */
export function openStreamSocket(options: StreamSocketOptions): SocketLike {
  const http = new URL(options.url);
  http.protocol = http.protocol === 'wss:' ? 'https:' : 'http:';
  let token = options.token;
  /** The channels the stream should carry, each with its filter as JSON text. */
  const wanted = new Map<string, string | undefined>();
  const positions = new Map<string, CursorPosition>();
  let current: AbortController | undefined;
  let covers = new Map<string, string | undefined>();
  let scheduled = false;
  /** Bytes arrived since the last `ping`: the server's heartbeats keep this true on a live stream. */
  let alive = true;
  /** A refreshed token is on its way: the stream that carries it answers with `ready`, as a socket would. */
  let refreshed = false;

  const socket: SocketLike = {
    readyState: 0,
    onmessage: null,
    onclose: null,
    send: (text) => receive(JSON.parse(text) as Record<string, unknown>),
    close: (code = 1000, reason = '') => closed(code, reason),
  };
  const setState = (readyState: number) => Object.assign(socket, { readyState });
  const emit = (frame: Record<string, unknown>) => socket.onmessage?.({ data: JSON.stringify(frame) });
  const headers = (): Record<string, string> => (token === undefined ? {} : { authorization: `Bearer ${token}` });

  function closed(code: number, reason: string): void {
    if (socket.readyState === 3) return;
    current?.abort();
    current = undefined;
    setState(3);
    socket.onclose?.({ code, reason });
  }

  function opened(): void {
    if (socket.readyState === 1 && !refreshed) return;
    refreshed = false;
    setState(1);
    emit({ type: 'ready', subject: null, expires: expiresOf(token) });
  }

  function track(frame: Record<string, unknown>): void {
    const channel = String(frame['channel']);
    const seq = Number(frame['seq']);
    const epoch = typeof frame['epoch'] === 'string' ? frame['epoch'] : positions.get(channel)?.epoch;
    if (epoch !== undefined && wanted.has(channel)) positions.set(channel, { epoch, seq });
  }

  function receive(frame: Record<string, unknown>): void {
    const channel = String(frame['channel']);
    switch (frame['type']) {
      case 'subscribe': {
        const filter = frame['filter'] === undefined ? undefined : JSON.stringify(frame['filter']);
        const since = frame['since'] as CursorPosition | undefined;
        if (since !== undefined && !positions.has(channel)) positions.set(channel, since);
        wanted.set(channel, filter);
        // After a (re)open, the client subscribes again what the stream already carries: nothing to do.
        if (covers.get(channel) !== filter || !covers.has(channel)) schedule();
        return;
      }
      case 'unsubscribe':
        wanted.delete(channel);
        positions.delete(channel);
        schedule();
        return;
      case 'auth':
        token = String(frame['token']);
        refreshed = true;
        schedule(true);
        return;
      case 'publish':
        void publish(frame);
        return;
      case 'ping':
        if (alive || current === undefined) emit({ type: 'pong', id: frame['id'] });
        alive = false;
        return;
    }
  }

  function schedule(force = false): void {
    if (force) covers = new Map();
    if (scheduled || socket.readyState === 3) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      void stream();
    });
  }

  async function publish(frame: Record<string, unknown>): Promise<void> {
    const { id, channel } = frame;
    const url = new URL(`channels/${encodeURIComponent(String(channel))}/messages`, http);
    try {
      const response = await options.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers() },
        body: JSON.stringify(frame['payload']),
      });
      const body = (await response.json()) as Record<string, unknown>;
      emit(response.ok ? { ...body, type: 'published', id } : { ...body, type: 'error', id, channel });
    } catch (error) {
      emit({
        type: 'error',
        id,
        channel,
        code: 'unavailable',
        message: `the publish did not reach the server: ${String(error)}`,
      });
    }
  }

  async function stream(): Promise<void> {
    current?.abort();
    current = undefined;
    covers = new Map(wanted);
    if (wanted.size === 0) {
      if (socket.readyState === 0) await probe();
      else if (refreshed) opened();
      return;
    }
    const abort = new AbortController();
    current = abort;
    const url = new URL('events', http);
    for (const [channel, filter] of wanted) {
      url.searchParams.append('channel', channel);
      if (filter !== undefined) url.searchParams.set(`filter.${channel}`, filter);
    }
    const held = new Map(
      [...wanted.keys()].flatMap((channel) => {
        const at = positions.get(channel);
        return at === undefined ? [] : [[channel, at] as const];
      }),
    );
    if (held.size > 0) url.searchParams.set('since', encodeCursor(held));
    try {
      const response = await options.fetch(url, {
        headers: { accept: 'text/event-stream', ...headers() },
        signal: abort.signal,
      });
      if (current !== abort) return;
      if (response.status !== 200 || response.body === null) return refused(response);
      opened();
      const last = await readEvents(
        response.body,
        () => current === abort,
        () => {
          alive = true;
        },
        (frame) => {
          track(frame);
          emit(frame);
        },
      );
      // The server's last comment names the close code a socket would have had (4401, 4403, 1001, ...).
      if (current === abort) closed(last?.code ?? 1006, last?.text ?? 'the stream ended');
    } catch (error) {
      if (current === abort) closed(1006, `the stream failed: ${String(error)}`);
    }
  }

  /** With nothing to stream, whether the server answers at all: what makes this socket open. */
  async function probe(): Promise<void> {
    try {
      const response = await options.fetch(new URL('readyz', http));
      if (response.status === 200) return opened();
      closed(1013, `readyz answered ${response.status}`);
    } catch (error) {
      closed(1006, `the server did not answer: ${String(error)}`);
    }
  }

  async function refused(response: Response): Promise<void> {
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    const message = String(body['message'] ?? response.statusText);
    // The close a socket would have had: 4401 for a token refused, 4429 for the subject's limit, 1013 to retry later.
    const code = { 401: 4401, 429: 4429, 503: 1013 }[response.status];
    if (code !== undefined) return closed(code, message);
    const channel = body['channel'];
    if (typeof channel !== 'string' || !wanted.has(channel)) return closed(1008, message);
    // One channel refused (not allowed, bad filter, undeclared): the client drops that subscription; the rest go on.
    wanted.delete(channel);
    emit({ ...body, type: 'error', channel });
    schedule();
  }

  for (const frame of options.initial) receive(frame);
  schedule();
  return socket;
}
