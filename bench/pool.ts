/**
 * The client processes (bench/generator.ts) as the orchestrator sees them, and the IPC messages between
 * them: spawned per run (the scale scenario spawns its own), handed a share of each case's clients,
 * armed, asked for reports, stopped at the end. Their combined progress is the notifier's credit.
 */
import { join } from 'node:path';
import type { GeneratorReport } from './tracker.ts';
import { within } from './wait.ts';

/** What each `mux` client subscribes to; with `filterField`, client i filters on `{[field]: {"eq": i % modulus}}`. */
export interface MuxSubscribe {
  readonly channels: readonly string[];
  readonly filterField: string | undefined;
}

/** `count` clients, client i of all going to `urls[i % urls.length]`; defaults in DEFAULTS. */
export interface ConnectSpec {
  /** A WebSocket on `/<channel>`, a `pgws.v1` socket, or `sql.listen` on the database (the ceiling). */
  readonly kind: 'ws' | 'mux' | 'pg';
  readonly urls: readonly string[];
  /** The channel of `pg` clients (`ws` clients have theirs in the URL). */
  readonly channel?: string;
  readonly count: number;
  /** Client i is checked for the notifications whose group floor(SEQ / producers) is i modulo this. */
  readonly modulus?: number;
  readonly subscribe?: MuxSubscribe;
  /** Client i offers `tokens[i]` as the subprotocol `bearer.T`. */
  readonly tokens?: readonly string[];
  /** Put every client on the first N processes only. */
  readonly generators?: number;
  /** Per client; a process stops starting connects after 3 × this. */
  readonly timeoutMs?: number;
  /** Try an upgrade refused with 503 again on a fresh connection (maybe another worker) for this long. */
  readonly retryRefusedMs?: number;
  /** Process g takes only the URLs j with j % processes === g: destination addresses, so port ranges, of its own. */
  readonly ownAddresses?: boolean;
}

// 64 handshakes in flight per process: more only overflows the listen backlog.
const DEFAULTS = { modulus: 1, concurrency: 64, timeoutMs: 20_000 };

/** A {@link ConnectSpec} as a process receives it: defaults in place, its own URLs and tokens. */
export type Connecting = ConnectSpec & typeof DEFAULTS;

/** How a connect went: `ms` is the slowest process's; `refused` counts 503 answers, `retried` their retries. */
export interface ConnectResult {
  readonly opened: number;
  readonly failed: number;
  readonly firstError: string | undefined;
  readonly ms: number;
  readonly refused: number;
  readonly retried: number;
}

/** A new case: notifications 0..expected-1 of `run`; progress is reported in steps of `step`. */
export interface Arm {
  readonly run: number;
  readonly expected: number;
  readonly producers: number;
  readonly step: number;
}

/** A close an open client did not ask for, and `Date.now()` when it came. */
export type SeenClose = { readonly code: number; readonly at: number };

/** What each command is answered with. */
export interface Answers {
  readonly connect: ConnectResult;
  readonly arm: null;
  readonly report: GeneratorReport;
  readonly count: number;
  readonly closes: SeenClose[];
  readonly close: null;
}

/** Orchestrator → process; `id` comes back with the answer. */
export type Command = { readonly id: number } & (
  | { readonly type: 'connect'; readonly spec: Connecting; readonly first: number; readonly count: number }
  | ({ readonly type: 'arm' } & Arm)
  | { readonly type: 'report' | 'count' | 'closes' | 'close' | 'exit' }
);

/** Process → orchestrator; `progress` (every open client has `count` of `run`) is the notifier's credit. */
export type Reply =
  | { readonly type: 'ready' }
  | { readonly type: 'answer'; readonly id: number; readonly value: unknown }
  | { readonly type: 'progress'; readonly run: number; readonly count: number };

/** The running processes. */
export type Pool = Awaited<ReturnType<typeof startPool>>;

// A command before its id is given (distributive, so each keeps its own fields).
type Unsent<C = Command> = C extends unknown ? Omit<C, 'id'> : never;

const ASK_MS = 120_000;
// A process stops starting connects after 3 × timeoutMs (bench/generator.ts); the last may take one more.
const connectAnswerMs = (timeoutMs: number) => Math.max(ASK_MS, 4 * timeoutMs + 10_000);

/** Spawns `size` client processes and waits until each has said it is ready. */
export async function startPool(size: number) {
  let nextId = 1;
  let run = -1;
  let wake = Promise.withResolvers<void>();
  const readies: Promise<void>[] = [];
  const members = Array.from({ length: size }, () => {
    const ready = Promise.withResolvers<void>();
    readies.push(ready.promise);
    const waiting = new Map<number, PromiseWithResolvers<unknown>>();
    const child = Bun.spawn([process.execPath, join(import.meta.dir, 'generator.ts')], {
      stdio: ['ignore', 'inherit', 'inherit'],
      serialization: 'json',
      ipc(message: Reply) {
        if (message.type === 'ready') return ready.resolve();
        if (message.type === 'answer') return waiting.get(message.id)?.resolve(message.value);
        if (message.run === run) member.progress = Math.max(member.progress, message.count);
        // Everyone waiting shares one promise; the next waiters get a fresh one.
        wake.resolve();
        wake = Promise.withResolvers<void>();
      },
    });
    const member = { child, waiting, clients: 0, progress: 0 };
    void child.exited.then((code) => {
      const gone = new Error(`client process ${child.pid} exited with ${code}`);
      ready.reject(gone);
      for (const pending of waiting.values()) pending.reject(gone);
      if (code !== 0) process.stderr.write(`bench: ${gone.message}\n`);
    });
    return member;
  });

  const ask = <T extends keyof Answers>(
    member: (typeof members)[number],
    command: Unsent & { type: T },
    ms = ASK_MS,
  ) => {
    const id = nextId++;
    const answer = Promise.withResolvers<unknown>();
    member.waiting.set(id, answer);
    member.child.send({ ...command, id });
    const what = `${command.type} answer from client process ${member.child.pid}`;
    return within(answer.promise as Promise<Answers[T]>, ms, what).finally(() => member.waiting.delete(id));
  };
  const all = <T extends keyof Answers>(command: Unsent & { type: T }) =>
    Promise.all(members.map((member) => ask<T>(member, command)));

  const pool = {
    pids: members.map((m) => m.child.pid),
    async connect(spec: ConnectSpec): Promise<ConnectResult> {
      const used = Math.max(1, Math.min(size, spec.generators ?? size));
      const full = { ...DEFAULTS, ...spec };
      let first = 0;
      const results = await Promise.all(
        members.map((member, g) => {
          const count = g >= used ? 0 : Math.floor(spec.count / used) + (g < spec.count % used ? 1 : 0);
          const start = first;
          first += count;
          member.clients = count;
          if (count === 0) return { opened: 0, failed: 0, firstError: undefined, ms: 0, refused: 0, retried: 0 };
          const urls = spec.ownAddresses ? spec.urls.filter((_, j) => j % used === g) : spec.urls;
          if (urls.length === 0) throw new Error(`client process ${g} has no URL of its own (${spec.urls.length})`);
          const tokens = spec.tokens?.slice(start, start + count);
          const mine: Connecting = { ...full, urls, ...(tokens === undefined ? {} : { tokens }) };
          return ask(member, { type: 'connect', spec: mine, first: start, count }, connectAnswerMs(full.timeoutMs));
        }),
      );
      const total = (pick: (r: ConnectResult) => number) => results.reduce((sum, r) => sum + pick(r), 0);
      return {
        opened: total((r) => r.opened),
        failed: total((r) => r.failed),
        firstError: results.find((r) => r.firstError !== undefined)?.firstError,
        ms: Math.max(...results.map((r) => r.ms)),
        refused: total((r) => r.refused),
        retried: total((r) => r.retried),
      };
    },
    async arm(arm: Arm) {
      run = arm.run;
      for (const member of members) member.progress = 0;
      await all({ type: 'arm', ...arm });
    },
    /** The count every open client of the armed run has reached (the least over processes with clients). */
    progress() {
      const active = members.filter((m) => m.clients > 0);
      return active.length === 0 ? 0 : Math.min(...active.map((m) => m.progress));
    },
    /** Resolves on the next progress report, or after `ms`. */
    nextProgress: (ms: number) => within(wake.promise, ms, 'progress').catch(() => {}),
    /** Distinct frames of the armed run received so far by all clients (cheaper than a report). */
    received: async () => (await all({ type: 'count' })).reduce((sum, n) => sum + n, 0),
    report: () => all({ type: 'report' }),
    /** Every close since the clients opened that they did not ask for. */
    closes: async () => (await all({ type: 'closes' })).flat(),
    async close() {
      await all({ type: 'close' });
      for (const member of members) member.clients = 0;
    },
    [Symbol.asyncDispose]: () => pool.stop(),
    async stop(): Promise<void> {
      for (const { child } of members) if (child.exitCode === null) child.send({ type: 'exit', id: 0 });
      const exited = Promise.all(members.map((m) => m.child.exited));
      await within(exited, 5000, 'exit of the client processes').catch(async () => {
        for (const { child } of members) child.kill('SIGKILL');
        await exited;
      });
    },
  };
  try {
    await within(Promise.all(readies), 30_000, 'start of the client processes');
  } catch (error) {
    await pool.stop();
    throw error;
  }
  return pool;
}
