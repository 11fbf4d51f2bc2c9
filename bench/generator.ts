/**
 * A client process of the pool (bench/pool.ts): holds its share of a case's clients (plain WebSockets,
 * `pgws.v1` sockets, or raw LISTEN connections), tracks what each receives (bench/tracker.ts), and
 * answers the pool over IPC; it exits when told to or when its parent goes.
 */
import postgres from 'postgres';
import { openMux } from './mux-client.ts';
import { clock } from './notifier.ts';
import type { Answers, Command, Connecting, ConnectResult, Reply, SeenClose } from './pool.ts';
import { type Client, createTracker, type Share } from './tracker.ts';
import { type Closed, opening, watchClose } from './wait.ts';

/** Closes a client; resolves when it is gone (bounded by the caller). */
type Handle = () => Promise<unknown>;

// How Bun's WebSocket reports an upgrade refused with 503; every 503 of ours carries Retry-After: 1.
const REFUSED = 'status code: 503';
const RETRY_AFTER_MS = 1000;

const send = (reply: Reply) => process.send?.(reply);
const tracker = createTracker((run, count) => send({ type: 'progress', run, count }));
const handles: Handle[] = [];
const seenCloses: SeenClose[] = [];
let closingAll = false;

/** A client whose socket is open: counted by the tracker until its close, which is noted. */
function held(ws: WebSocket, closed: Promise<Closed>, client: Client): Handle {
  void closed.then(({ code }) => {
    tracker.closed(client, code);
    if (!closingAll) seenCloses.push({ code, at: Date.now() });
  });
  return () => {
    ws.close(1000);
    return closed;
  };
}

async function openPlain(url: string, spec: Connecting, share: Share): Promise<Handle> {
  const ws = new WebSocket(url);
  const closed = watchClose(ws);
  const open = Promise.withResolvers<void>();
  ws.onopen = () => open.resolve();
  await opening(ws, closed, open.promise, spec.timeoutMs, 'open');
  const client = tracker.add(share);
  ws.onmessage = (event: MessageEvent) => tracker.receive(client, event.data as string, clock());
  return held(ws, closed, client);
}

/** A `pgws.v1` socket, open once every subscribe has its `subscribed` answer. */
async function openMultiplexed(url: string, spec: Connecting, share: Share, token?: string): Promise<Handle> {
  const { channels, filterField } = spec.subscribe ?? { channels: [], filterField: undefined };
  const socket = await openMux(url, spec.timeoutMs, token);
  const filter = filterField === undefined ? undefined : { [filterField]: { eq: share.key } };
  let client: Client | undefined;
  const answers = await socket.subscribe(
    channels.map((channel) => ({ channel, filter })),
    (text) => {
      if (client !== undefined) tracker.receiveMessage(client, text, clock());
    },
    spec.timeoutMs,
  );
  // Each channel's messages go on from its `subscribed` seq; with a filter they may skip.
  const lanes = answers.map((answer) => answer.seq);
  client = tracker.add({ ...share, lanes, consecutive: filterField === undefined });
  return held(socket.ws, socket.closed, client);
}

async function openListener(url: string, channel: string, share: Share): Promise<Handle> {
  const options = {
    max: 1,
    onnotice: () => {},
    fetch_types: false,
    connection: { application_name: 'pgws-bench-raw' },
  };
  const sql = postgres(url, options);
  let client: Client | undefined;
  const listening = sql.listen(channel, (payload) => {
    if (client !== undefined) tracker.receive(client, payload, clock());
  });
  await listening.catch(async (error: unknown) => {
    await sql.end({ timeout: 1 });
    throw error;
  });
  const added = tracker.add(share);
  client = added;
  return () => {
    tracker.closed(added, 1000);
    return sql.end({ timeout: 1 });
  };
}

/** Opens client `index` of the whole pool; `first` is this process's first. */
function open(index: number, first: number, spec: Connecting): Promise<Handle> {
  const url = spec.urls[index % spec.urls.length] ?? '';
  const share = { modulus: spec.modulus, key: index % spec.modulus };
  switch (spec.kind) {
    case 'ws':
      return openPlain(url, spec, share);
    case 'mux':
      return openMultiplexed(url, spec, share, spec.tokens?.[index - first]);
    case 'pg':
      return openListener(url, spec.channel ?? '', share);
  }
}

async function connect(spec: Connecting, first: number, count: number): Promise<ConnectResult> {
  const started = performance.now();
  let next = 0;
  let opened = 0;
  let failed = 0;
  let refused = 0;
  let retried = 0;
  let firstError: string | undefined;
  // Bounded as a whole too: past the deadline the rest count as failed instead of being tried.
  const deadline = started + spec.timeoutMs * 3;
  // A refused upgrade goes again on a fresh connection (another source port, so maybe another worker).
  const attempt = async (index: number): Promise<Handle> => {
    const until = Math.min(deadline, performance.now() + (spec.retryRefusedMs ?? 0));
    for (;;) {
      try {
        return await open(index, first, spec);
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
    while (next < count) {
      const index = first + next++;
      try {
        if (performance.now() > deadline) throw new Error(`connect phase past ${spec.timeoutMs * 3} ms`);
        handles.push(await attempt(index));
        opened += 1;
      } catch (error) {
        failed += 1;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(spec.concurrency, count) }, lane));
  return { opened, failed, firstError, ms: performance.now() - started, refused, retried };
}

async function closeAll(timeoutMs: number): Promise<null> {
  closingAll = true;
  await Promise.race([Promise.all(handles.splice(0).map((close) => close())), Bun.sleep(timeoutMs)]);
  tracker.clear();
  seenCloses.length = 0;
  closingAll = false;
  return null;
}

async function answer(command: Command): Promise<Answers[keyof Answers]> {
  switch (command.type) {
    case 'connect':
      return connect(command.spec, command.first, command.count);
    case 'arm':
      tracker.arm(command);
      return null;
    case 'report':
      return tracker.report();
    case 'count':
      return tracker.received();
    case 'closes':
      return [...seenCloses];
    case 'close':
      return closeAll(10_000);
    case 'exit':
      await closeAll(1000);
      process.exit(0);
  }
}

process.on('message', async (command: Command) =>
  send({ type: 'answer', id: command.id, value: await answer(command) }),
);
// The orchestrator died without telling us: do not linger holding sockets.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
