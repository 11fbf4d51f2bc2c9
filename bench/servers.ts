/**
 * The servers under test, real processes: ours (`bun src/main.ts`, a config with only what the scenario
 * asks for) and the bare bridge, on a free port of 0.0.0.0, returned once healthy, stopped with their
 * process tree; every live one is remembered, so an interrupted run can still stop them all.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/db/embedded.ts';
import { listeningSockets, processTree, treeRssKb } from './procstat.ts';
import { within } from './wait.ts';

/** A running server under test; `await using` stops it. */
export type Target = Awaited<ReturnType<typeof launch>>;

/** The declared channel with an inline schema: "every feature on". Other channels pass through raw. */
export const SCHEMA_CHANNEL = 'bench_schema';

/**
 * A channel whose inline schema is the benchmark payload's shape, as strict as it can be; `keyed` adds
 * the filters' `k` between `seq` and `t` (a schema channel re-serialises the payload in property order,
 * which the clients' parser relies on); `settings` are more keys of the channel (`history`, `durable`, …).
 */
export const schemaChannelToml = (
  name: string,
  options: { readonly keyed?: boolean; readonly settings?: Readonly<Record<string, number | boolean>> } = {},
) => `
[channels.${name}]
description = "Benchmark payloads, checked against an inline schema"
${Object.entries(options.settings ?? {})
  .map(([key, value]) => `${key} = ${value}`)
  .join('\n')}

[channels.${name}.schema]
type = "object"
required = ["r", "seq", ${options.keyed ? '"k", ' : ''}"t", "p"]
additionalProperties = false
properties.r = { type = "integer", minimum = 0 }
properties.seq = { type = "integer", minimum = 0 }
${options.keyed ? 'properties.k = { type = "integer", minimum = 0 }' : ''}
properties.t = { type = "number" }
properties.p = { type = "string", maxLength = 8000 }
`;

/** Our server: `server` adds `[server]` keys, `toml` more tables (channels, `[auth]`), `env` more variables. */
export interface OursOptions {
  readonly databaseUrl: string;
  readonly server?: Readonly<Record<string, number | string>>;
  readonly toml?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly label?: string;
  /** Write CPU profiles (`bun --cpu-prof`, .cpuprofile and .md) here at exit. */
  readonly profileDir?: string | undefined;
  /** Healthy /healthz answers in a row before returning (default 20; 1: the first, as a client would). */
  readonly healthyInARow?: number;
}

/** Starts our server and returns it once healthy; throws with its stderr if it exits first. */
export function startOurs(options: OursOptions): Promise<Target> {
  const profile =
    options.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-md', `--cpu-prof-dir=${options.profileDir}`];
  const env = { DATABASE_URL: options.databaseUrl, LOG_LEVEL: 'warn', HOST: '', ...options.env };
  return launch(options.label ?? 'ours', env, options.healthyInARow ?? HEALTHY_IN_A_ROW, (dir, port) => {
    const file = join(dir, 'channels.toml');
    const server = Object.entries(options.server ?? {}).map(([key, value]) => `${key} = ${JSON.stringify(value)}`);
    const toml = ['[server]', 'host = "0.0.0.0"', `port = ${port}`, ...server, schemaChannelToml(SCHEMA_CHANNEL)];
    writeFileSync(file, [...toml, options.toml ?? ''].join('\n'));
    return [process.execPath, ...profile, 'src/main.ts', '--config', file];
  });
}

/** Starts the bare bridge as `processes` processes on one port, each with its own LISTEN. */
export function startBare(databaseUrl: string, processes = 1): Promise<Target> {
  const env = { DATABASE_URL: databaseUrl, HOST: '0.0.0.0', PROCESSES: String(processes) };
  const label = processes === 1 ? 'bare' : `bare, ${processes} processes`;
  return launch(label, env, HEALTHY_IN_A_ROW, () => [process.execPath, join(import.meta.dir, 'bare.ts')]);
}

/** Stops every server still running (for an interrupted or failed run). */
export async function stopAllTargets(): Promise<void> {
  await Promise.all([...live].map((target) => target.stop()));
}

const root = join(import.meta.dir, '..');
const HEALTHY_IN_A_ROW = 20;
const live = new Set<{ stop(): Promise<void> }>();
// Fresh connections: with workers the kernel spreads them over processes, and one may still be
// connecting to the database while another already answers.
const fresh = { headers: { connection: 'close' } };

const readText = (path: string) => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
};

/**
 * Spawns a server (argv for a temp dir of its own, removed at stop, and a free port) with its logs in
 * that dir, and waits until it is healthy.
 */
async function launch(
  label: string,
  env: Record<string, string>,
  healthyInARow: number,
  argv: (dir: string, port: number) => readonly string[],
) {
  const dir = mkdtempSync(join(tmpdir(), 'pgws-bench-server-'));
  const port = await freePort('0.0.0.0');
  const command = argv(dir, port);
  const log = (name: string) => join(dir, name);
  const child = Bun.spawn([...command], {
    cwd: root,
    env: { ...process.env, ...env, PORT: String(port) },
    stdin: 'ignore',
    stdout: Bun.file(log('stdout.log')),
    stderr: Bun.file(log('stderr.log')),
  });
  const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`, fresh);
  const metrics = () =>
    get('/metrics').then(
      (r) => r.text(),
      () => '',
    );
  const urls = (path: string, addresses: number) =>
    Array.from({ length: addresses }, (_, i) => `ws://127.0.0.${i + 1}:${port}/${path}`);
  let stopped: Promise<void> | undefined;
  const target = {
    label,
    pid: child.pid,
    port,
    /** The WebSocket URLs of a channel, one per destination address 127.0.0.1..N. */
    urls: (channel: string, addresses: number) => urls(encodeURIComponent(channel), addresses),
    /** The multiplexed endpoint `/`, one URL per destination address. */
    rootUrls: (addresses: number) => urls('', addresses),
    /** Resolves once `processes` sockets listen on the port, then `inARow` fresh /healthz answers were 200. */
    async whenHealthy(processes = 1, inARow = HEALTHY_IN_A_ROW): Promise<void> {
      const deadline = performance.now() + 30_000;
      let status = 0;
      for (let answered = 0; answered < inARow; ) {
        const stderr = () => readText(log('stderr.log')).slice(-2000);
        if (child.exitCode !== null) throw new Error(`${label} exited with ${child.exitCode}: ${stderr()}`);
        if (performance.now() > deadline)
          throw new Error(`${label} not healthy within 30 s (last status ${status}): ${stderr()}`);
        // Workers bind the port one by one, each once its database connection is up.
        const listening = answered > 0 || listeningSockets(port) >= processes;
        status = listening
          ? await get('/healthz').then(
              (r) => r.status,
              () => 0,
            )
          : 0;
        answered = status === 200 ? answered + 1 : 0;
        if (answered === 0) await Bun.sleep(50);
      }
    },
    /** The server process and its workers, now. */
    processes: () => processTree(child.pid),
    rssKb: () => treeRssKb(child.pid),
    /** A value from /metrics (`name` with its labels, if any), as one process answers. */
    async metric(name: string): Promise<number | undefined> {
      const line = (await metrics()).split('\n').find((l) => l.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.slice(name.length + 1));
    },
    /** What the server says about refusals and closes (our /metrics and logs; empty for the bare bridge). */
    async diagnose(): Promise<string> {
      if (label.startsWith('bare')) return '';
      // Each scrape lands on one worker; a few fresh ones see them all.
      const lines = new Set<string>();
      for (let i = 0; i < 8; i++) {
        for (const line of (await metrics()).split('\n'))
          if (/^pgws_(upgrades_refused|closes|listener_reconnects)_total.* [1-9]/.test(line)) lines.add(line);
      }
      // LOG_LEVEL=warn: whatever the server logged is worth showing.
      const logged = ['stdout.log', 'stderr.log']
        .map((name) => readText(log(name)).split('\n').slice(-3).join(' ⏎ '))
        .filter((text) => text !== '');
      return [...lines, ...logged.map((text) => `log: ${text.slice(0, 600)}`)].join('; ');
    },
    stop(): Promise<void> {
      stopped ??= (async () => {
        const tree = processTree(child.pid);
        child.kill('SIGTERM');
        await within(child.exited, 8000, `exit of ${label}`).catch(() => child.kill('SIGKILL'));
        await child.exited;
        // Workers must not outlive it; only its own tree's pids, and only if they still run our command.
        for (const pid of tree.slice(1)) {
          if (readText(`/proc/${pid}/cmdline`).includes(command.at(-1) ?? '\0')) process.kill(pid, 'SIGKILL');
        }
        live.delete(target);
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
    [Symbol.asyncDispose]: (): Promise<void> => target.stop(),
  };
  live.add(target);
  try {
    await target.whenHealthy(1, healthyInARow);
  } catch (error) {
    await target.stop();
    throw error;
  }
  return target;
}
