/**
 * A socket-holder process for the auth scenario (bench/auth.ts): opens its share of multiplexed
 * `pgws.v1` sockets, each offering its own token as the subprotocol `bearer.T` (or none), counts a
 * socket as connected once its `ready` frame arrives, keeps them open, and records when and how each
 * one was closed by the server. Started only by bench/holders.ts; answers over IPC and exits with it.
 */
import type { HolderCommand, HolderReply, OpenCommand } from './holders.ts';

const send = (reply: HolderReply) => process.send?.(reply);
const sockets: WebSocket[] = [];
const closes: Array<{ code: number; at: number }> = [];

function openOne(url: string, token: string | undefined, timeoutMs: number): Promise<WebSocket> {
  const { promise, resolve, reject } = Promise.withResolvers<WebSocket>();
  const protocols = token === undefined ? ['pgws.v1'] : ['pgws.v1', `bearer.${token}`];
  const ws = new WebSocket(url, protocols);
  let ready = false;
  const timer = setTimeout(() => {
    reject(new Error(`no ready within ${timeoutMs} ms`));
    ws.close();
  }, timeoutMs);
  ws.onmessage = () => {
    if (ready) return;
    ready = true;
    clearTimeout(timer);
    resolve(ws);
  };
  ws.onclose = (event) => {
    clearTimeout(timer);
    if (ready) closes.push({ code: event.code, at: Date.now() });
    else reject(new Error(`closed before ready (code ${event.code})`));
  };
  ws.onerror = () => {};
  return promise;
}

async function open(command: OpenCommand) {
  const started = performance.now();
  let next = 0;
  let opened = 0;
  let failed = 0;
  let firstError: string | undefined;
  const lane = async () => {
    while (next < command.count) {
      const i = next++;
      const url = command.urls[(command.first + i) % command.urls.length] ?? '';
      try {
        sockets.push(await openOne(url, command.tokens[i], command.timeoutMs));
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

async function closeAll(timeoutMs: number) {
  const all = sockets.splice(0);
  const gone = all.map(
    (ws) =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.addEventListener('close', () => resolve());
        ws.close(1000);
      }),
  );
  await Promise.race([Promise.all(gone), Bun.sleep(timeoutMs)]);
  closes.length = 0;
}

async function handle(command: HolderCommand): Promise<void> {
  switch (command.type) {
    case 'open':
      return void send({ type: 'opened', id: command.id, result: await open(command) });
    case 'closes':
      return void send({ type: 'closes', id: command.id, closes: [...closes] });
    case 'close':
      await closeAll(command.timeoutMs);
      return void send({ type: 'closed', id: command.id });
    case 'exit':
      await closeAll(1000);
      process.exit(0);
  }
}

process.on('message', (message: HolderCommand) => void handle(message));
// The orchestrator is gone: do not linger holding sockets.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', id: 0 });
