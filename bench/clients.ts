/**
 * A generator process: holds a share of the benchmark's clients (plain or multiplexed WebSockets, or
 * raw LISTEN connections for the baseline), tracks what each receives, and answers the orchestrator's
 * commands over IPC (bench/protocol.ts). Started only by bench/fleet.ts; it exits when told to or when
 * its parent goes.
 */
import { SUBPROTOCOL } from '../src/http/offer.ts';
import { type Command, type ConnectCommand, type ConnectResult, clock, type Reply } from './protocol.ts';
import { openRawListener } from './raw-listen.ts';
import { type Client, createTracker, type Share } from './tracker.ts';

interface Handle {
  close(): void;
  /** Resolves when the client is gone (bounded by the caller). */
  readonly gone: Promise<void>;
}

// Bun's WebSocket client tells why an upgrade failed only in its error event, e.g. "Expected 101
// status code: 503"; every 503 of ours carries Retry-After: 1 (src/http/wire.ts refusalHeaders).
const REFUSED = 'status code: 503';
const RETRY_AFTER_MS = 1000;

const send = (reply: Reply) => process.send?.(reply);
const tracker = createTracker((run, count) => send({ type: 'progress', id: 0, run, count }));
const handles: Handle[] = [];

const errorText = (event: Event): string => (event as ErrorEvent).message ?? '';

/** "code 1006: Expected 101 status code: 503": the close code and whatever the client was told. */
const closeText = (event: CloseEvent, why: string): string =>
  [`code ${event.code}`, event.reason, why].filter((text) => text !== '').join(': ');

function openWebSocket(url: string, timeoutMs: number, share: Share): Promise<Handle> {
  const { promise, resolve, reject } = Promise.withResolvers<Handle>();
  const gone = Promise.withResolvers<void>();
  const ws = new WebSocket(url);
  let client: Client | undefined;
  const timer = setTimeout(() => {
    reject(new Error(`no open within ${timeoutMs} ms`));
    ws.close();
  }, timeoutMs);
  ws.onopen = () => {
    clearTimeout(timer);
    const added = tracker.add(share);
    client = added;
    ws.onmessage = (event: MessageEvent) => tracker.receive(added, event.data as string, clock());
    resolve({ close: () => ws.close(1000), gone: gone.promise });
  };
  let why = '';
  ws.onclose = (event: CloseEvent) => {
    clearTimeout(timer);
    if (client !== undefined) tracker.closed(client, event.code);
    else reject(new Error(`closed before open (${closeText(event, why)})`));
    gone.resolve();
  };
  // An error is always followed by close, which settles everything.
  ws.onerror = (event) => {
    why = errorText(event);
  };
  return promise;
}

/**
 * A `pgws.v1` socket: waits for `ready`, sends every subscribe at once, and is open once each has been
 * answered with `subscribed` (whose seq is where that channel's messages must go on from). An `error`
 * answer, or anything else before the last `subscribed`, fails it.
 */
function openMultiplexed(url: string, command: ConnectCommand, index: number): Promise<Handle> {
  const { promise, resolve, reject } = Promise.withResolvers<Handle>();
  const gone = Promise.withResolvers<void>();
  const { channels, filterField } = command.subscribe ?? { channels: [], filterField: undefined };
  const key = index % command.modulus;
  const ws = new WebSocket(url, [SUBPROTOCOL]);
  const heads: number[] = Array.from(channels, () => -1);
  let answered = 0;
  let client: Client | undefined;
  const fail = (why: string) => {
    clearTimeout(timer);
    reject(new Error(why));
    ws.close();
  };
  const timer = setTimeout(() => fail(`not open and subscribed within ${command.timeoutMs} ms`), command.timeoutMs);
  const live = () => {
    clearTimeout(timer);
    // Each channel's messages go on from its `subscribed` seq; with a filter they may skip.
    const added = tracker.add({ modulus: command.modulus, key, lanes: heads, consecutive: filterField === undefined });
    client = added;
    ws.onmessage = (event: MessageEvent) => tracker.receiveMessage(added, event.data as string, clock());
    resolve({ close: () => ws.close(1000), gone: gone.promise });
  };
  ws.onmessage = (event: MessageEvent) => {
    const frame = JSON.parse(event.data as string) as { type?: string; id?: number; seq?: number };
    if (frame.type === 'ready' && answered === 0) {
      if (ws.protocol !== SUBPROTOCOL) return fail(`server selected subprotocol "${ws.protocol}"`);
      if (channels.length === 0) return live();
      for (const [id, channel] of channels.entries()) {
        const filter = filterField === undefined ? undefined : { [filterField]: { eq: key } };
        ws.send(JSON.stringify({ type: 'subscribe', id, channel, filter }));
      }
      return;
    }
    const id = frame.id ?? -1;
    if (frame.type !== 'subscribed' || heads[id] !== -1 || typeof frame.seq !== 'number') {
      return fail(`unexpected answer to subscribe: ${String(event.data).slice(0, 200)}`);
    }
    heads[id] = frame.seq;
    answered += 1;
    if (answered === channels.length) live();
  };
  let why = '';
  ws.onclose = (event: CloseEvent) => {
    clearTimeout(timer);
    if (client !== undefined) tracker.closed(client, event.code);
    else reject(new Error(`closed before subscribed (${closeText(event, why)})`));
    gone.resolve();
  };
  ws.onerror = (event) => {
    why = errorText(event);
  };
  return promise;
}

async function openListener(url: string, channel: string, share: Share): Promise<Handle> {
  let client: Client | undefined;
  const listener = await openRawListener(url, channel, (payload) => {
    if (client !== undefined) tracker.receive(client, payload, clock());
  });
  const added = tracker.add(share);
  client = added;
  const gone = Promise.withResolvers<void>();
  return {
    close: () => {
      tracker.closed(added, 1000);
      void listener.close().finally(gone.resolve);
    },
    gone: gone.promise,
  };
}

/** Opens client `index` of the whole fleet. */
function open(index: number, command: ConnectCommand): Promise<Handle> {
  const url = command.urls[index % command.urls.length] ?? '';
  const share = { modulus: command.modulus, key: index % command.modulus };
  switch (command.kind) {
    case 'ws':
      return openWebSocket(url, command.timeoutMs, share);
    case 'mux':
      return openMultiplexed(url, command, index);
    case 'pg':
      return openListener(url, command.channel, share);
  }
}

async function connect(command: ConnectCommand): Promise<ConnectResult> {
  const started = performance.now();
  let next = 0;
  let opened = 0;
  let failed = 0;
  let refused = 0;
  let retried = 0;
  let firstError: string | undefined;
  // Bounded as a whole too: past the deadline the rest count as failed instead of being tried.
  const deadline = started + command.timeoutMs * 3;
  // A refused upgrade goes again on a fresh connection (another source port, so maybe another worker).
  const attempt = async (index: number): Promise<Handle> => {
    const until = Math.min(deadline, performance.now() + command.retryRefusedMs);
    for (;;) {
      try {
        return await open(index, command);
      } catch (error) {
        if (!(error instanceof Error && error.message.includes(REFUSED))) throw error;
        refused += 1;
        if (performance.now() + RETRY_AFTER_MS > until) throw error;
        retried += 1;
        await Bun.sleep(RETRY_AFTER_MS);
      }
    }
  };
  const lane = async () => {
    while (next < command.count) {
      const i = next++;
      if (performance.now() > deadline) {
        failed += 1;
        firstError ??= `connect phase past ${command.timeoutMs * 3} ms`;
        continue;
      }
      try {
        handles.push(await attempt(command.first + i));
        opened += 1;
      } catch (error) {
        failed += 1;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(command.concurrency, command.count) }, lane));
  return { opened, failed, firstError, ms: performance.now() - started, refused, retried };
}

async function closeAll(timeoutMs: number): Promise<number> {
  const started = performance.now();
  const all = handles.splice(0);
  for (const handle of all) handle.close();
  await Promise.race([Promise.all(all.map((h) => h.gone)), Bun.sleep(timeoutMs)]);
  tracker.clear();
  return performance.now() - started;
}

async function handle(command: Command): Promise<void> {
  switch (command.type) {
    case 'connect':
      return void send({ type: 'connected', id: command.id, result: await connect(command) });
    case 'arm':
      tracker.arm(command);
      return void send({ type: 'armed', id: command.id });
    case 'report':
      return void send({ type: 'report', id: command.id, report: tracker.report() });
    case 'count':
      return void send({ type: 'counted', id: command.id, received: tracker.received() });
    case 'close':
      return void send({ type: 'closed', id: command.id, ms: await closeAll(command.timeoutMs) });
    case 'exit':
      await closeAll(1000);
      process.exit(0);
  }
}

process.on('message', (message: Command) => void handle(message));
// The orchestrator died without telling us: do not linger holding sockets.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', id: 0 });
