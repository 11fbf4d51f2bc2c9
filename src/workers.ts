/**
 * `[server] workers = N`: N server processes on one port (SO_REUSEPORT), so fan-out uses more than one
 * core. The primary runs a bridge itself and spawns N - 1 copies of its own command line; each has
 * its own LISTEN connection and its own clients, and the kernel spreads new connections among them.
 */
import type { Subprocess } from 'bun';
import type { Logger } from './observe/log.ts';

/** Set in a worker's environment to its index (1..N-1); the primary has none. */
export const WORKER_ENV = 'PGWS_WORKER';

/** The primary's handle on its workers. */
export interface Workers {
  /** Forwards the signal and waits for every worker to exit. */
  stop(signal: NodeJS.Signals): Promise<void>;
}

/** Options: `env` is the primary's environment plus the resolved port and database URL. */
export interface WorkerOptions {
  count: number;
  command: readonly string[];
  env: Record<string, string | undefined>;
  log: Logger;
}

/** Spawns the extra workers. A worker that dies is logged, not restarted: the supervisor owns that. */
export function spawnWorkers(options: WorkerOptions): Workers {
  const children: Subprocess[] = [];
  let stopping = false;
  for (let index = 1; index < options.count; index++) {
    const child = Bun.spawn([...options.command], {
      env: { ...options.env, [WORKER_ENV]: String(index) },
      stdin: 'ignore',
      stdout: 'inherit',
      stderr: 'inherit',
    });
    void child.exited.then((code) => {
      if (!stopping) options.log.error('worker exited unexpectedly', { worker: index, code });
    });
    children.push(child);
  }
  return {
    async stop(signal) {
      stopping = true;
      for (const child of children) child.kill(signal);
      await Promise.all(children.map((child) => child.exited));
    },
  };
}

/** In a worker: exit when the primary is gone (the kernel re-parents orphans to another process). */
export function exitWithParent(onOrphaned: () => void): Timer {
  const parent = process.ppid;
  return setInterval(() => {
    if (process.ppid !== parent) onOrphaned();
  }, 1000);
}
