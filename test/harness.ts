/**
 * Test harness: a whole bridge started in-process through the composition root, real WebSocket
 * clients, and a database client to send NOTIFYs. Everything returned is disposable with `await using`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import postgres from 'postgres';
import { resolveKeys } from '../src/auth/keys.ts';
import type { Clock } from '../src/base/clock.ts';
import { createLogger, type Logger } from '../src/base/log.ts';
import type { Tracer } from '../src/base/trace.ts';
import { type Bridge, createBridge } from '../src/bridge.ts';
import { bundleClient } from '../src/client/bundle.ts';
import { parseConfig } from '../src/config/load.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { within } from './wait.ts';

// Re-exported: most tests take their waits from here with the bridge.
export { waitFor, within } from './wait.ts';

/** The database the suite runs against (set by test/setup.ts). */
export function databaseUrl(): string {
  const url = process.env['TEST_DATABASE_URL'];
  if (url === undefined || url === '')
    throw new Error('TEST_DATABASE_URL is not set: run the tests with `bun test` (test/setup.ts sets it)');
  return url;
}

// Bundled once per test file: every bridge serves the same /client.js.
let bundled: Promise<string> | undefined;
const clientJs = () => {
  bundled ??= bundleClient();
  return bundled;
};

let counter = 0;
/** A channel name no other test uses, so suites can share one database. */
export const uniqueChannel = (prefix = 'ch') =>
  `${prefix}_${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 6)}`;

/** A config file written to a temp dir (so schema module paths resolve), parsed by the real loader. */
export async function configFrom(toml: string, files: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pgws-config-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const file = join(dir, 'channels.toml');
  writeFileSync(file, toml);
  return parseConfig(toml, file);
}

/** A bridge under test plus a query client for sending notifications. */
export interface TestBridge extends AsyncDisposable {
  readonly bridge: Bridge;
  readonly url: URL;
  readonly sql: postgres.Sql;
  readonly logs: string[];
  wsUrl(channel: string): string;
  notify(channel: string, payload: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `TEST_INGEST=replication` runs every bridge of a suite with `[database] ingest = "replication"` (`.ci/run` runs
 * the durable channels' tests so on both databases), unless the test sets `ingest` itself.
 */
function ingestLine(database = ''): string {
  const ingest = process.env['TEST_INGEST'];
  return ingest === undefined || ingest === '' || /^\s*ingest\s*=/m.test(database) ? '' : `ingest = "${ingest}"\n`;
}

/** Starts a bridge on a free port on 127.0.0.1. `toml` is appended after a `[server]` section. */
export async function startBridge(
  toml = '',
  options: {
    files?: Record<string, string>;
    server?: string;
    databaseUrl?: string;
    database?: string;
    log?: Logger;
    waitReady?: boolean;
    /** Extra environment for `[auth] secret_env`. */
    env?: Record<string, string>;
    /** Token expiry's time (test/clock.ts `fakeClock`, to move past an `exp` without waiting for it). */
    clock?: Clock;
    /** Spans (src/tracing.ts); default off. */
    tracer?: Tracer;
  } = {},
): Promise<TestBridge> {
  const text = `[server]\nhost = "127.0.0.1"\nport = 0\n${options.server ?? ''}\n[database]\n${ingestLine(options.database)}${options.database ?? ''}\n${toml}`;
  const config = await configFrom(text, options.files);
  const logs: string[] = [];
  const log = options.log ?? createLogger({ level: 'debug', write: (line) => logs.push(line) });
  const consoleHtml = await Bun.file(join(import.meta.dir, '..', 'console.html')).text();
  // [auth] keys are resolved as main.ts does: from the environment (plus the test's) and files beside the config.
  const auth =
    config.auth === undefined
      ? undefined
      : await resolveKeys(config.auth, {
          label: 'channels.toml',
          directory: dirname(config.file),
          env: { ...process.env, ...options.env },
          readText: (path) => Bun.file(path).text(),
        });
  const bridge = await createBridge({
    config,
    databaseUrl: options.databaseUrl ?? databaseUrl(),
    log,
    consoleHtml,
    clientJs: await clientJs(),
    ...(auth === undefined ? {} : { authKeys: auth.keys }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.tracer === undefined ? {} : { tracer: options.tracer }),
  });
  const sql = postgres(databaseUrl(), { max: 2, onnotice: () => {} });
  if (options.waitReady !== false) await within(bridge.ready, 10_000, 'the bridge to become ready');
  const stop = async () => {
    await bridge.stop();
    await sql.end({ timeout: 1 });
  };
  return {
    bridge,
    url: bridge.url,
    sql,
    logs,
    wsUrl: (channel) => `ws://${bridge.url.host}/${encodeURIComponent(channel)}`,
    notify: async (channel, payload) => {
      await sql`SELECT pg_notify(${channel}, ${payload})`;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Reads one sample from GET /metrics, e.g. `metric(t.url, 'pgws_closes_total', { reason: 'slow_consumer' })`. */
export async function metric(base: URL, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricIn(await (await fetch(new URL('/metrics', base))).text(), name, labels);
}

/** The value of the first series of `name` in a /metrics text whose labels include `labels` (0 when none). */
export function metricIn(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels);
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const have = new Map(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], JSON.parse(`"${m[2]}"`)]),
    );
    if (wanted.every(([key, value]) => have.get(key) === value)) return Number(match[3]);
  }
  return 0;
}

/** A PostgreSQL of the test's own (embedded, persistent), so it can be stopped and started again. */
export async function startOwnDatabase() {
  const dataDir = mkdtempSync(join(tmpdir(), 'pgws-own-'));
  const db = await startEmbeddedPostgres({ dataDir, persistent: true });
  return Object.assign(db, {
    async [Symbol.asyncDispose]() {
      await db.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}
