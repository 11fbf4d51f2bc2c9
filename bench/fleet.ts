/**
 * The generator processes as the orchestrator sees them: spawned once per benchmark run, handed a
 * share of every case's clients, asked for their reports, and stopped at the end (also on failure).
 * Their combined progress is the notifier's credit.
 */
import { join } from 'node:path';
import type { ClientKind, Command, ConnectResult, GeneratorReport, MuxSubscribe, Reply } from './protocol.ts';

/** Distributive Omit, so each command keeps its own fields. */
type Unsent<C> = C extends unknown ? Omit<C, 'id'> : never;

/** What `connect` asks for; the fleet splits `count` over its generators. */
export interface ConnectSpec {
  readonly kind: ClientKind;
  readonly urls: readonly string[];
  readonly channel: string;
  readonly count: number;
  /** Which share of the notifications client i should get (ConnectCommand.modulus; default 1: all). */
  readonly modulus?: number;
  readonly subscribe?: MuxSubscribe;
  /** Put every client on the first N generators only (default: spread over all). */
  readonly generators?: number;
  readonly concurrency?: number;
  readonly timeoutMs?: number;
  /** Retry upgrades refused with 503 for this long per client (ConnectCommand.retryRefusedMs; default 0). */
  readonly retryRefusedMs?: number;
  /**
   * Generator g connects only to the URLs j with j % (generators used) === g: with one URL per
   * destination address, each generator has addresses of its own, and so ephemeral-port ranges of
   * its own (a port is unique per destination). Default: every generator uses every URL.
   */
  readonly ownAddresses?: boolean;
}

/** The running generators. */
export interface Fleet {
  readonly pids: readonly number[];
  connect(spec: ConnectSpec): Promise<ConnectResult>;
  arm(run: number, expected: number, producers: number, step: number): Promise<void>;
  /** The count every open client of the armed run has reached (min over generators with clients). */
  progress(): number;
  /** Resolves on the next progress report, or after `ms`. */
  nextProgress(ms: number): Promise<void>;
  /** Distinct frames of the armed run received so far by all clients (cheaper than a report). */
  received(): Promise<number>;
  report(): Promise<GeneratorReport[]>;
  close(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

interface Generator {
  readonly process: Bun.Subprocess;
  readonly waiting: Map<number, (reply: Reply) => void>;
  clients: number;
  progress: number;
}

const COMMAND_TIMEOUT_MS = 120_000;
// A generator stops starting connects after 3 × timeoutMs (bench/clients.ts); the last may take one more.
const connectAnswerMs = (timeoutMs: number) => Math.max(COMMAND_TIMEOUT_MS, 4 * timeoutMs + 10_000);

/** Spawns `size` generator processes and waits until each has said it is ready. */
export async function startFleet(size: number): Promise<Fleet> {
  let nextId = 1;
  let run = -1;
  let wake = Promise.withResolvers<void>();
  const generators: Generator[] = [];
  const readies: Promise<void>[] = [];
  for (let g = 0; g < size; g++) {
    const ready = Promise.withResolvers<void>();
    const waiting = new Map<number, (reply: Reply) => void>();
    const child = Bun.spawn([process.execPath, join(import.meta.dir, 'clients.ts')], {
      stdio: ['ignore', 'inherit', 'inherit'],
      serialization: 'json',
      ipc(message: Reply) {
        if (message.type === 'ready') return ready.resolve();
        if (message.type === 'progress') {
          if (message.run === run) generator.progress = Math.max(generator.progress, message.count);
          // Everyone waiting shares one promise; the next waiters get a fresh one.
          wake.resolve();
          wake = Promise.withResolvers<void>();
          return;
        }
        waiting.get(message.id)?.(message);
        waiting.delete(message.id);
      },
    });
    const generator: Generator = { process: child, waiting, clients: 0, progress: 0 };
    generators.push(generator);
    readies.push(ready.promise);
    void child.exited.then((code) => {
      for (const settle of waiting.values()) settle({ type: 'closed', id: 0, ms: Number.NaN });
      waiting.clear();
      if (code !== 0 && code !== null) process.stderr.write(`bench: generator ${child.pid} exited with ${code}\n`);
    });
  }

  const ask = <T extends Reply['type']>(
    generator: Generator,
    command: Unsent<Command>,
    type: T,
    timeoutMs = COMMAND_TIMEOUT_MS,
  ) => {
    const id = nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<Extract<Reply, { type: T }>>();
    const timer = setTimeout(
      () => reject(new Error(`generator ${generator.process.pid}: no ${type} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    generator.waiting.set(id, (reply) => {
      clearTimeout(timer);
      if (reply.type === type) resolve(reply as Extract<Reply, { type: T }>);
      else reject(new Error(`generator ${generator.process.pid} exited while waiting for ${type}`));
    });
    generator.process.send({ ...command, id });
    return promise;
  };

  const fleet: Fleet = {
    pids: generators.map((g) => g.process.pid),
    async connect(spec) {
      let first = 0;
      const spread = Math.max(1, Math.min(size, spec.generators ?? size));
      const results = await Promise.all(
        generators.map((generator, g) => {
          const count = g >= spread ? 0 : Math.floor(spec.count / spread) + (g < spec.count % spread ? 1 : 0);
          const start = first;
          first += count;
          generator.clients = count;
          if (count === 0) return { opened: 0, failed: 0, firstError: undefined, ms: 0 };
          const urls = spec.ownAddresses ? spec.urls.filter((_, j) => j % spread === g) : spec.urls;
          if (urls.length === 0) throw new Error(`generator ${g} has no URL of its own (${spec.urls.length} URLs)`);
          const timeoutMs = spec.timeoutMs ?? 20_000;
          const command = {
            type: 'connect',
            kind: spec.kind,
            urls,
            channel: spec.channel,
            first: start,
            count,
            modulus: spec.modulus ?? 1,
            subscribe: spec.subscribe,
            concurrency: spec.concurrency ?? 64,
            timeoutMs,
            retryRefusedMs: spec.retryRefusedMs ?? 0,
          } as const;
          return ask(generator, command, 'connected', connectAnswerMs(timeoutMs)).then((reply) => reply.result);
        }),
      );
      const total = (pick: (r: ConnectResult) => number | undefined) =>
        results.reduce((sum, r) => sum + (pick(r) ?? 0), 0);
      return {
        opened: total((r) => r.opened),
        failed: total((r) => r.failed),
        firstError: results.find((r) => r.firstError !== undefined)?.firstError,
        ms: Math.max(...results.map((r) => r.ms)),
        refused: total((r) => r.refused),
        retried: total((r) => r.retried),
      };
    },
    async arm(nextRun, expected, producers, step) {
      run = nextRun;
      for (const generator of generators) generator.progress = 0;
      await Promise.all(
        generators.map((g) => ask(g, { type: 'arm', run: nextRun, expected, producers, step }, 'armed')),
      );
    },
    progress() {
      const active = generators.filter((g) => g.clients > 0);
      return active.length === 0 ? 0 : Math.min(...active.map((g) => g.progress));
    },
    async nextProgress(ms) {
      let timer: Timer | undefined;
      await Promise.race([wake.promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
      clearTimeout(timer);
    },
    async received() {
      const replies = await Promise.all(generators.map((g) => ask(g, { type: 'count' }, 'counted')));
      return replies.reduce((sum, reply) => sum + reply.received, 0);
    },
    report: () =>
      Promise.all(generators.map((g) => ask(g, { type: 'report' }, 'report').then((reply) => reply.report))),
    async close(timeoutMs = 10_000) {
      await Promise.all(generators.map((g) => ask(g, { type: 'close', timeoutMs }, 'closed')));
      for (const generator of generators) generator.clients = 0;
    },
    async stop() {
      for (const generator of generators) {
        if (generator.process.exitCode === null) generator.process.send({ type: 'exit', id: nextId++ });
      }
      const exited = Promise.all(generators.map((g) => g.process.exited));
      if ((await Promise.race([exited, Bun.sleep(5000).then(() => 'timeout' as const)])) === 'timeout') {
        for (const generator of generators) if (generator.process.exitCode === null) generator.process.kill('SIGKILL');
        await exited;
      }
    },
  };
  const timeout = Bun.sleep(30_000).then(() => 'timeout' as const);
  if ((await Promise.race([Promise.all(readies), timeout])) === 'timeout') {
    await fleet.stop();
    throw new Error('generators did not start within 30 s');
  }
  return fleet;
}
