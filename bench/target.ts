/**
 * A server under test as a real process: spawned on a free port on 0.0.0.0 (so clients can spread
 * over 127.0.0.1..N), returned once healthy, stopped with its whole process tree and its temp dir.
 * Every live one is remembered, so an interrupted run can still stop them all.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { listeningSockets, processTree, treeRssKb } from './procstat.ts';

/** A running server under test. */
export interface Target {
  readonly label: string;
  readonly pid: number;
  readonly port: number;
  /** The WebSocket URLs of a channel, one per destination address 127.0.0.1..N. */
  urls(channel: string, addresses: number): string[];
  /** The multiplexed endpoint `/` (pgws.v1), one URL per destination address 127.0.0.1..N. */
  rootUrls(addresses: number): string[];
  /**
   * Resolves once `processes` sockets listen on the port (workers bind it one by one) and then 20
   * fresh connections in a row found it healthy.
   */
  whenHealthy(processes?: number): Promise<void>;
  /** The server process and its descendants (workers), now. */
  processes(): number[];
  rssKb(): number;
  /** What the server says about refusals and closes (our /metrics; empty for the bare bridge). */
  diagnose(): Promise<string>;
  stop(): Promise<void>;
}

/** How to start one. `dir` is a temp dir of its own, removed at stop; logs go there. */
export interface Spawn {
  readonly label: string;
  readonly argv: readonly string[];
  readonly env: Record<string, string>;
  readonly dir: string;
  readonly port: number;
  /** Healthy answers in a row before returning (default 20; 1 = the first, as a client would). */
  readonly healthyInARow?: number | undefined;
  readonly metrics: boolean;
}

const root = join(import.meta.dir, '..');
const HEALTHY_IN_A_ROW = 20;
const live = new Set<Target>();

/** Stops every server still running (for an interrupted or failed run). */
export async function stopAllTargets(): Promise<void> {
  await Promise.all([...live].map((target) => target.stop()));
}

const fresh = { headers: { connection: 'close' } };

/** Spawns the server and waits until it is healthy; throws with its stderr if it exits first. */
export async function launch(spec: Spawn): Promise<Target> {
  const errors = join(spec.dir, 'stderr.log');
  const child = Bun.spawn([...spec.argv], {
    cwd: root,
    env: { ...process.env, ...spec.env, PORT: String(spec.port) },
    stdin: 'ignore',
    stdout: Bun.file(join(spec.dir, 'stdout.log')),
    stderr: Bun.file(errors),
  });
  const stderrText = () => {
    try {
      return readFileSync(errors, 'utf8').trim().slice(-2000);
    } catch {
      return '';
    }
  };
  const base = `http://127.0.0.1:${spec.port}`;
  // Fresh connections: with workers the kernel spreads them over processes, and one may still be
  // connecting to the database while another already answers 200.
  const whenHealthy = async (inARow: number) => {
    const deadline = performance.now() + 30_000;
    let healthy = 0;
    while (healthy < inARow) {
      if (child.exitCode !== null) {
        throw new Error(`${spec.label} exited with ${child.exitCode} before it was healthy: ${stderrText()}`);
      }
      const status = await fetch(`${base}/healthz`, fresh).then(
        (r) => r.status,
        () => 0,
      );
      healthy = status === 200 ? healthy + 1 : 0;
      if (performance.now() > deadline)
        throw new Error(`${spec.label} not healthy within 30 s (last status ${status}): ${stderrText()}`);
      if (healthy === 0) await Bun.sleep(50);
    }
  };

  let stopped: Promise<void> | undefined;
  const target: Target = {
    label: spec.label,
    pid: child.pid,
    port: spec.port,
    urls: (channel, addresses) =>
      Array.from({ length: addresses }, (_, i) => `ws://127.0.0.${i + 1}:${spec.port}/${encodeURIComponent(channel)}`),
    rootUrls: (addresses) => Array.from({ length: addresses }, (_, i) => `ws://127.0.0.${i + 1}:${spec.port}/`),
    async whenHealthy(processes = 1) {
      const deadline = performance.now() + 30_000;
      while (listeningSockets(spec.port) < processes) {
        if (performance.now() > deadline)
          throw new Error(`${spec.label}: fewer than ${processes} sockets listen on port ${spec.port} after 30 s`);
        await Bun.sleep(20);
      }
      await whenHealthy(HEALTHY_IN_A_ROW);
    },
    processes: () => processTree(child.pid),
    rssKb: () => treeRssKb(child.pid),
    async diagnose() {
      if (!spec.metrics) return '';
      // Each scrape lands on one worker; a few fresh ones see them all.
      const lines = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const text = await fetch(`${base}/metrics`, fresh).then(
          (r) => r.text(),
          () => '',
        );
        for (const line of text.split('\n'))
          if (/^pgws_(upgrades_refused|closes|listener_reconnects)_total.* [1-9]/.test(line)) lines.add(line);
      }
      // LOG_LEVEL=warn: whatever the server logged is worth showing.
      const logged = ['stdout.log', 'stderr.log']
        .map((name) => {
          try {
            return readFileSync(join(spec.dir, name), 'utf8').trim().split('\n').slice(-3).join(' ⏎ ');
          } catch {
            return '';
          }
        })
        .filter((text) => text !== '');
      return [...lines, ...logged.map((text) => `log: ${text.slice(0, 600)}`)].join('; ');
    },
    stop() {
      stopped ??= (async () => {
        const tree = processTree(child.pid);
        child.kill('SIGTERM');
        const timeout = Bun.sleep(8000).then(() => 'timeout' as const);
        if ((await Promise.race([child.exited, timeout])) === 'timeout') child.kill('SIGKILL');
        await child.exited;
        // Workers must not outlive it; only its own tree's pids, and only if they still run our command.
        for (const pid of tree.slice(1)) {
          const command = (() => {
            try {
              return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
            } catch {
              return '';
            }
          })();
          if (command.includes(spec.argv.at(-1) ?? '\0')) process.kill(pid, 'SIGKILL');
        }
        live.delete(target);
        rmSync(spec.dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
  live.add(target);
  try {
    await whenHealthy(spec.healthyInARow ?? HEALTHY_IN_A_ROW);
  } catch (error) {
    await target.stop();
    throw error;
  }
  return target;
}
