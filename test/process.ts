/**
 * The server as a real process (`bun src/main.ts`), for what only a process shows: signals, exit
 * codes, the ready line, the embedded start path, and memory that is the server's alone.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { metricIn } from './harness.ts';
import { waitFor, within } from './wait.ts';

const MAIN = join(import.meta.dir, '..', 'src', 'main.ts');

/** A running server process with its collected output. */
export interface ServerProcess extends AsyncDisposable {
  readonly process: Subprocess<'ignore', 'pipe', 'pipe'>;
  readonly url: URL;
  readonly lines: string[];
  readonly cwd: string;
  wsUrl(channel: string): string;
  /** Resident set size in bytes, from /proc. */
  rss(): number;
  /** Sends a signal and resolves with the exit code. */
  signal(signal: NodeJS.Signals): Promise<number>;
}

/** Options: the config text (written to a fresh temp dir, which is also the working directory). */
export interface SpawnOptions {
  toml: string;
  env?: Record<string, string>;
  files?: Record<string, string>;
  readyMs?: number;
  /** Working directory to reuse (default: a fresh temp dir). */
  cwd?: string;
  /** Wait for /healthz 200 after the ready line (default true). */
  waitHealthy?: boolean;
  /** What to run instead of `bun src/main.ts --config channels.toml` (the single binary, a shell with a ulimit). */
  command?: readonly string[];
  /** Start from an empty environment (PATH only) instead of this process's: what a deployed binary gets. */
  bareEnv?: boolean;
}

/** Spawns the server and waits for its ready line; fails with its output if it exits first. */
export async function spawnServer(options: SpawnOptions): Promise<ServerProcess> {
  const cwd = options.cwd ?? mkdtempSync(join(tmpdir(), 'pgws-proc-'));
  // As root the embedded PostgreSQL runs as "postgres", which must be able to enter the directory.
  chmodSync(cwd, 0o755);
  for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(join(cwd, name), text);
  writeFileSync(join(cwd, 'channels.toml'), options.toml);
  const child = Bun.spawn([...(options.command ?? ['bun', MAIN, '--config', 'channels.toml'])], {
    cwd,
    env: {
      ...(options.bareEnv ? { PATH: '/usr/bin:/bin' } : process.env),
      LOG_LEVEL: 'info',
      PORT: '0',
      HOST: '127.0.0.1',
      ...options.env,
    },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const lines: string[] = [];
  const ready = Promise.withResolvers<URL>();
  void collect(child.stdout, lines, (line) => {
    const parsed = safeJson(line);
    if (typeof parsed?.['url'] === 'string' && String(parsed['message']).startsWith('ready'))
      ready.resolve(new URL(parsed['url']));
  });
  void collect(child.stderr, lines, () => {});
  void child.exited.then((code) =>
    ready.reject(new Error(`server exited with ${code} before ready:\n${lines.join('\n')}`)),
  );
  let url: URL;
  try {
    url = await within(ready.promise, options.readyMs ?? 20_000, 'the ready line');
    if (options.waitHealthy !== false) {
      await waitFor(
        async () => (await fetch(new URL('/healthz', url))).status === 200,
        20_000,
        'the server to become healthy',
      );
    }
  } catch (error) {
    // A server that never became ready must not outlive the test that gave up on it.
    child.kill('SIGKILL');
    throw error;
  }
  const signal = async (name: NodeJS.Signals) => {
    child.kill(name);
    return child.exited;
  };
  return {
    process: child,
    url,
    lines,
    cwd,
    wsUrl: (channel) => `ws://${url.host}/${encodeURIComponent(channel)}`,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024,
    signal,
    async [Symbol.asyncDispose]() {
      if (child.exitCode !== null) return;
      // SIGTERM first, so an embedded PostgreSQL the server started is stopped with it, not orphaned.
      child.kill('SIGTERM');
      await within(child.exited, 10_000, 'the server to exit after SIGTERM').catch(() => {
        child.kill('SIGKILL');
        return child.exited;
      });
    },
  };
}

async function collect(stream: ReadableStream<Uint8Array>, lines: string[], onLine: (line: string) => void) {
  let pending = '';
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      onLine(line);
    }
  }
}

function safeJson(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A GET over a fresh TCP connection (fetch would reuse one), so with workers the kernel may pick any process. */
export async function freshGet(base: URL, path: string): Promise<string> {
  const socket = tcpConnect(Number(base.port), base.hostname);
  let response = '';
  socket.on('data', (chunk) => {
    response += chunk.toString();
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${base.host}\r\nConnection: close\r\n\r\n`);
  await within(new Promise((resolve) => socket.once('close', resolve)), 5000, 'the HTTP response');
  return response.slice(response.indexOf('\r\n\r\n') + 4);
}

/** Each process's figure of one series, from `/metrics?by=worker` (worker 0 is the primary). */
export async function perWorker(base: URL, name: string, labels: Record<string, string>, workers: number) {
  const text = await freshGet(base, '/metrics?by=worker');
  return Array.from({ length: workers }, (_, worker) => metricIn(text, name, { ...labels, worker: String(worker) }));
}

/** Waits until every one of `workers` processes has had its readiness canary come back (after a start or a reconnect). */
export async function everyWorkerReady(base: URL, workers: number, ms = 15_000): Promise<void> {
  await waitFor(
    async () => (await perWorker(base, 'pgws_canary_ready', {}, workers)).every((ready) => ready === 1),
    ms,
    'every worker to be ready',
  );
}
