/**
 * The tests' client of `GET /events` (docs/PROTOCOL.md "Server-Sent Events"): a real HTTP request whose response
 * it reads as it arrives and parses by the format asked for (Server-Sent Events per the WHATWG event-stream
 * rules, or NDJSON), recording every event, comment and line so tests wait on them instead of sleeping. A refused
 * request gives its status and JSON body instead. It imports nothing of the bridge.
 */
import { within } from './wait.ts';

/** One Server-Sent Event as dispatched (its `data` parsed as JSON), or a comment line (`event` `:`). */
export interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: Record<string, unknown>;
  readonly comment?: string;
}

/** How to open a stream. */
export interface EventsOptions {
  readonly headers?: Readonly<Record<string, string>>;
  /** `ndjson` asks with `Accept: application/x-ndjson`; SSE is the default. */
  readonly format?: 'sse' | 'ndjson';
  /** A connection of its own (no keep-alive reuse), so with workers the kernel may pick any process. */
  readonly fresh?: boolean;
}

/** A stream that started (200). */
export interface EventsClient extends Disposable {
  readonly status: 200;
  readonly headers: Headers;
  /** Events in arrival order; with NDJSON, each line as `{ event: type, data: line }`. */
  readonly events: SseEvent[];
  /** The raw text so far. */
  text(): string;
  /** The `id` of the last event that carried one: what `EventSource` would send as `Last-Event-ID`. */
  lastId(): string | undefined;
  /** The next event after the previous `next` whose type is `event` (any event when absent). */
  next(event?: string, ms?: number): Promise<SseEvent>;
  until(check: (events: readonly SseEvent[]) => boolean, ms: number, what: string): Promise<void>;
  /** `message` events of `channel`, their data. */
  messages(channel: string): Record<string, unknown>[];
  /** Resolves when the server ends the response. */
  readonly ended: Promise<void>;
  close(): void;
}

/** A stream refused before it started. */
export interface Refused {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

/** `/events?<query>` at `base`. */
export async function openEvents(
  base: URL,
  query: string,
  options: EventsOptions = {},
): Promise<EventsClient | Refused> {
  const abort = new AbortController();
  const accept = options.format === 'ndjson' ? 'application/x-ndjson' : 'text/event-stream';
  const response = await fetch(new URL(`/events?${query}`, base), {
    headers: { accept, ...options.headers },
    signal: abort.signal,
    ...(options.fresh ? { keepalive: false } : {}),
  });
  if (response.status !== 200) {
    return {
      status: response.status,
      headers: response.headers,
      body: (await response.json()) as Record<string, unknown>,
    };
  }
  const events: SseEvent[] = [];
  let raw = '';
  const waiters = new Set<() => void>();
  const settle = () => {
    for (const waiter of waiters) waiter();
  };
  const ended = Promise.withResolvers<void>();
  let done = false;
  const parse = options.format === 'ndjson' ? ndjsonParser(events) : sseParser(events);
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true });
        raw += text;
        parse(text);
        settle();
      }
    } catch {
      // Aborted by close(), or cut by the server: either way the stream is over.
    }
    done = true;
    ended.resolve();
    settle();
  })();
  const until = (check: (events: readonly SseEvent[]) => boolean, ms: number, what: string) => {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const waiter = () => {
      if (check(events)) resolve();
      else if (done) reject(new Error(`the stream ended while waiting for ${what}`));
    };
    waiters.add(waiter);
    waiter();
    return within(promise, ms, what).finally(() => waiters.delete(waiter));
  };
  let read = 0;
  return {
    status: 200,
    headers: response.headers,
    events,
    text: () => raw,
    lastId: () => events.findLast((event) => event.id !== undefined)?.id,
    async next(event, ms = 5000) {
      const found = () => events.findIndex((e, index) => index >= read && (event === undefined || e.event === event));
      await until(() => found() !== -1, ms, `a "${event ?? 'any'}" event after #${read}`);
      const index = found();
      read = index + 1;
      return events[index]!;
    },
    until,
    messages: (channel) =>
      events.filter((e) => e.event === 'message' && e.data['channel'] === channel).map((e) => e.data),
    ended: ended.promise,
    close: () => abort.abort(),
    [Symbol.dispose]: () => abort.abort(),
  };
}

/** Opens a stream that must start; throws with the refusal otherwise. */
export async function streamEvents(base: URL, query: string, options: EventsOptions = {}): Promise<EventsClient> {
  const opened = await openEvents(base, query, options);
  if (opened.status !== 200)
    throw new Error(`GET /events?${query} answered ${opened.status} ${JSON.stringify((opened as Refused).body)}`);
  return opened as EventsClient;
}

/** The WHATWG event-stream parser, as `EventSource` runs it: fields until a blank line dispatches the event. */
function sseParser(events: SseEvent[]): (text: string) => void {
  let pending = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  return (text) => {
    pending += text;
    const lines = pending.split(/\r\n|\r|\n/);
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') {
        if (data.length > 0) events.push({ event: event || 'message', id, data: JSON.parse(data.join('\n')) });
        event = '';
        data = [];
        id = undefined;
      } else if (line.startsWith(':')) {
        events.push({ event: ':', id: undefined, data: {}, comment: line.slice(1) });
      } else {
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
      }
    }
  };
}

/** NDJSON: one JSON object per line; an empty line (a heartbeat) is recorded as a comment. */
function ndjsonParser(events: SseEvent[]): (text: string) => void {
  let pending = '';
  return (text) => {
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') events.push({ event: ':', id: undefined, data: {}, comment: '' });
      else {
        const data = JSON.parse(line) as Record<string, unknown>;
        events.push({ event: String(data['type']), id: undefined, data });
      }
    }
  };
}
