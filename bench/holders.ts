/**
 * The socket-holder processes of the auth scenario as the orchestrator sees them (bench/holder.ts is
 * the other side): spawned for the scenario, handed a share of each batch of sockets with their
 * tokens, asked when their sockets were closed, and stopped at the end, also on failure.
 */
import { join } from 'node:path';
import type { ConnectResult } from './protocol.ts';

/** Open `count` sockets; socket i goes to `urls[(first + i) % urls.length]` and offers `tokens[i]`, if any. */
export interface OpenCommand {
  readonly type: 'open';
  readonly urls: readonly string[];
  readonly tokens: readonly (string | undefined)[];
  readonly first: number;
  readonly count: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
}

/** A server-side close a holder saw: the code, and `Date.now()` when its close event fired. */
export interface SeenClose {
  readonly code: number;
  readonly at: number;
}

/** Orchestrator → holder. */
export type HolderCommand = (
  | OpenCommand
  | { readonly type: 'closes' }
  | { readonly type: 'close'; readonly timeoutMs: number }
  | { readonly type: 'exit' }
) & { readonly id: number };

/** Holder → orchestrator. */
export type HolderReply =
  | { readonly type: 'ready'; readonly id: 0 }
  | { readonly type: 'opened'; readonly id: number; readonly result: ConnectResult }
  | { readonly type: 'closes'; readonly id: number; readonly closes: readonly SeenClose[] }
  | { readonly type: 'closed'; readonly id: number };

/** What {@link Holders.open} asks for; `tokens` (one per socket) may be empty for anonymous sockets. */
export interface OpenSpec {
  readonly urls: readonly string[];
  readonly count: number;
  readonly tokens?: readonly string[];
  readonly concurrency?: number;
  readonly timeoutMs?: number;
}

/** The running holders. */
export interface Holders {
  readonly pids: readonly number[];
  /** Opens the sockets over all holders at once; `ms` is the slowest holder's time to the last `ready`. */
  open(spec: OpenSpec): Promise<ConnectResult>;
  /** Every server close seen since the sockets were opened. */
  closes(): Promise<SeenClose[]>;
  /** Closes every socket (client side) and forgets the closes seen. */
  close(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

type Unsent<C> = C extends unknown ? Omit<C, 'id'> : never;
const ASK_TIMEOUT_MS = 120_000;

/** Spawns `size` holders and waits until each says it is ready. */
export async function startHolders(size: number): Promise<Holders> {
  let nextId = 1;
  const waiting = new Map<number, (reply: HolderReply) => void>();
  const readies: Promise<void>[] = [];
  const children = Array.from({ length: size }, () => {
    const ready = Promise.withResolvers<void>();
    readies.push(ready.promise);
    const child = Bun.spawn([process.execPath, join(import.meta.dir, 'holder.ts')], {
      stdio: ['ignore', 'inherit', 'inherit'],
      serialization: 'json',
      ipc(message: HolderReply) {
        if (message.type === 'ready') return ready.resolve();
        waiting.get(message.id)?.(message);
        waiting.delete(message.id);
      },
    });
    void child.exited.then(() => ready.reject(new Error(`holder ${child.pid} exited before it was ready`)));
    return child;
  });

  const ask = <T extends HolderReply['type']>(
    child: (typeof children)[number],
    command: Unsent<HolderCommand>,
    type: T,
  ) => {
    const id = nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<Extract<HolderReply, { type: T }>>();
    const timer = setTimeout(
      () => reject(new Error(`holder ${child.pid}: no ${type} within ${ASK_TIMEOUT_MS} ms`)),
      ASK_TIMEOUT_MS,
    );
    waiting.set(id, (reply) => {
      clearTimeout(timer);
      if (reply.type === type) resolve(reply as Extract<HolderReply, { type: T }>);
      else reject(new Error(`holder ${child.pid} answered ${reply.type}, not ${type}`));
    });
    child.send({ ...command, id });
    return promise;
  };

  const holders: Holders = {
    pids: children.map((child) => child.pid),
    async open(spec) {
      let first = 0;
      const results = await Promise.all(
        children.map((child, h) => {
          const count = Math.floor(spec.count / size) + (h < spec.count % size ? 1 : 0);
          const start = first;
          first += count;
          const command = {
            type: 'open',
            urls: spec.urls,
            tokens: spec.tokens?.slice(start, start + count) ?? [],
            first: start,
            count,
            concurrency: spec.concurrency ?? 64,
            timeoutMs: spec.timeoutMs ?? 20_000,
          } as const;
          return ask(child, command, 'opened').then((reply) => reply.result);
        }),
      );
      return {
        opened: results.reduce((sum, r) => sum + r.opened, 0),
        failed: results.reduce((sum, r) => sum + r.failed, 0),
        firstError: results.find((r) => r.firstError !== undefined)?.firstError,
        ms: Math.max(...results.map((r) => r.ms)),
      };
    },
    async closes() {
      const replies = await Promise.all(children.map((child) => ask(child, { type: 'closes' }, 'closes')));
      return replies.flatMap((reply) => reply.closes);
    },
    async close(timeoutMs = 10_000) {
      await Promise.all(children.map((child) => ask(child, { type: 'close', timeoutMs }, 'closed')));
    },
    async stop() {
      for (const child of children) if (child.exitCode === null) child.send({ type: 'exit', id: nextId++ });
      const exited = Promise.all(children.map((child) => child.exited));
      if ((await Promise.race([exited, Bun.sleep(5000).then(() => 'timeout' as const)])) === 'timeout') {
        for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
        await exited;
      }
    },
  };
  const timeout = Bun.sleep(30_000).then(() => 'timeout' as const);
  if ((await Promise.race([Promise.all(readies), timeout])) === 'timeout') {
    await holders.stop();
    throw new Error('socket holders did not start within 30 s');
  }
  return holders;
}
