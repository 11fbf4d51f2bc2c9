/**
 * A generator process: holds a share of the benchmark's clients (WebSockets, or raw LISTEN connections
 * for the baseline), tracks what each receives, and answers the orchestrator's commands over IPC
 * (bench/protocol.ts). Started only by bench/fleet.ts; it exits when told to or when its parent goes.
 */
import {
  type ClientKind,
  type Command,
  type ConnectCommand,
  type ConnectResult,
  clock,
  type Reply,
} from './protocol.ts';
import { openRawListener } from './raw-listen.ts';
import { type Client, createTracker } from './tracker.ts';

interface Handle {
  close(): void;
  /** Resolves when the client is gone (bounded by the caller). */
  readonly gone: Promise<void>;
}

const send = (reply: Reply) => process.send?.(reply);
const tracker = createTracker((run, count) => send({ type: 'progress', id: 0, run, count }));
const handles: Handle[] = [];

function openWebSocket(url: string, timeoutMs: number): Promise<Handle> {
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
    const added = tracker.add();
    client = added;
    ws.onmessage = (event: MessageEvent) => tracker.receive(added, event.data as string, clock());
    resolve({ close: () => ws.close(1000), gone: gone.promise });
  };
  ws.onclose = (event: CloseEvent) => {
    clearTimeout(timer);
    if (client !== undefined) tracker.closed(client, event.code);
    else reject(new Error(`closed before open (code ${event.code}${event.reason ? `: ${event.reason}` : ''})`));
    gone.resolve();
  };
  // An error is always followed by close, which settles everything.
  ws.onerror = () => {};
  return promise;
}

async function openListener(url: string, channel: string): Promise<Handle> {
  let client: Client | undefined;
  const listener = await openRawListener(url, channel, (payload) => {
    if (client !== undefined) tracker.receive(client, payload, clock());
  });
  const added = tracker.add();
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

function open(kind: ClientKind, url: string, command: ConnectCommand): Promise<Handle> {
  return kind === 'ws' ? openWebSocket(url, command.timeoutMs) : openListener(url, command.channel);
}

async function connect(command: ConnectCommand): Promise<ConnectResult> {
  const started = performance.now();
  let next = 0;
  let opened = 0;
  let failed = 0;
  let firstError: string | undefined;
  // Bounded as a whole too: past the deadline the rest count as failed instead of being tried.
  const deadline = started + command.timeoutMs * 3;
  const lane = async () => {
    while (next < command.count) {
      const i = next++;
      if (performance.now() > deadline) {
        failed += 1;
        firstError ??= `connect phase past ${command.timeoutMs * 3} ms`;
        continue;
      }
      const url = command.urls[(command.first + i) % command.urls.length] ?? '';
      try {
        handles.push(await open(command.kind, url, command));
        opened += 1;
      } catch (error) {
        failed += 1;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(command.concurrency, command.count) }, lane));
  return { opened, failed, firstError, ms: performance.now() - started };
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
