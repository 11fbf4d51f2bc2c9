/**
 * `[server] workers = N`: N server processes on one port (SO_REUSEPORT), so fan-out uses more than one
 * core. The primary runs a bridge itself and spawns N - 1 copies of its own command line, each with its
 * own clients (the kernel spreads new connections among them) and an IPC channel to the primary, whose one
 * LISTEN connection serves them all (`cluster/`).
 */
import type { Subprocess } from 'bun';
import { backoffDelay } from './base/backoff.ts';
import type { Logger } from './base/log.ts';
import type { ToPrimary, WorkerLink } from './cluster/messages.ts';
import type { Cluster } from './cluster/primary.ts';

/** Set in a worker's environment to its index (1..N-1); the primary has none. */
export const WORKER_ENV = 'PGWS_WORKER';

/** The primary's handle on its workers. */
export interface Workers {
  /** Forwards the signal and waits for every worker to exit. */
  stop(signal: NodeJS.Signals): Promise<void>;
  /** The worker processes running now. */
  pids(): number[];
}

/** Options: `env` is the primary's environment plus the resolved port and database URL. */
export interface WorkerOptions {
  count: number;
  command: readonly string[];
  env: Record<string, string | undefined>;
  log: Logger;
  /** The primary's side of the IPC channels: every worker is attached while it runs. */
  cluster: Cluster;
}

/** A worker that ran this long before dying is restarted at once; one that dies sooner backs off. */
const STABLE_MS = 10_000;
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 30_000;

/**
 * Spawns the extra workers and keeps them running: a worker that dies is logged and started again, with
 * capped exponential backoff while it keeps dying young, so a crash loop costs little and a one-off crash
 * costs its clients one reconnect.
 */
export function spawnWorkers(options: WorkerOptions): Workers {
  const children = new Map<number, Subprocess>();
  const restarts = new Set<Timer>();
  let stopping = false;

  const start = (index: number, failures: number) => {
    const startedAt = performance.now();
    let child: Subprocess | undefined;
    // The primary killed it (cluster/outbox.ts), and has logged and counted that already.
    let killed = false;
    const link: WorkerLink = {
      index,
      send(message) {
        try {
          child?.send(message);
        } catch (error) {
          // The worker is exiting; its exit detaches it.
          options.log.debug('IPC send to a worker failed', { worker: index, error });
        }
      },
      kill() {
        killed = true;
        child?.kill('SIGKILL');
      },
    };
    options.cluster.attach(link);
    const spawned = Bun.spawn([...options.command], {
      env: { ...options.env, [WORKER_ENV]: String(index) },
      stdin: 'ignore',
      stdout: 'inherit',
      stderr: 'inherit',
      ipc: (message) => options.cluster.receive(link, message as ToPrimary),
    });
    child = spawned;
    children.set(index, spawned);
    void spawned.exited.then((code) => {
      options.cluster.detach(link, stopping ? undefined : 'exited');
      if (stopping) return;
      const young = performance.now() - startedAt < STABLE_MS;
      const next = young ? failures + 1 : 0;
      const delay = young ? backoffDelay(failures, RESTART_MIN_MS, RESTART_MAX_MS, Math.random) : 0;
      if (killed) options.log.info('restarting the killed worker', { worker: index, inMs: delay });
      else options.log.error('worker exited unexpectedly; restarting it', { worker: index, code, inMs: delay });
      const timer = setTimeout(() => {
        restarts.delete(timer);
        if (!stopping) start(index, next);
      }, delay);
      restarts.add(timer);
    });
  };
  for (let index = 1; index < options.count; index++) start(index, 0);

  return {
    async stop(signal) {
      stopping = true;
      for (const timer of restarts) clearTimeout(timer);
      for (const child of children.values()) child.kill(signal);
      await Promise.all([...children.values()].map((child) => child.exited));
    },
    pids: () => [...children.values()].map((child) => child.pid),
  };
}

/**
 * In a worker: exit when the primary is gone. Its IPC channel closing says so at once; the parent check
 * (the kernel re-parents orphans) is the backstop.
 */
export function exitWithParent(onOrphaned: () => void): Timer {
  const parent = process.ppid;
  process.once('disconnect', onOrphaned);
  return setInterval(() => {
    if (process.ppid !== parent) onOrphaned();
  }, 1000);
}
