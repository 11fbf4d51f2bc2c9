/**
 * `pg-notify-ws/testing`: the whole bridge inside another project's `bun test`, so a test proves that its
 * triggers and its channel schemas agree. It starts the bridge in-process on a free port of its own, on the
 * given database (or `TEST_DATABASE_URL`, or a throwaway embedded PostgreSQL), watches every declared channel
 * through the real client, and records what the bridge dropped as invalid:
 *
 *   await using bridge = await startBridge({ config: 'channels.toml' });
 *   const order = bridge.next('orders');
 *   await bridge.sql`INSERT INTO orders (id) VALUES (1)`;
 *   expect((await order).payload.row.id).toBe(1);
 *
 * The process boundary of a test, as `main.ts` is the server's: it reads the config file, the environment
 * (`TEST_DATABASE_URL`, `[auth]`'s key) and writes the bridge's log to stderr.
 */
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveKeys } from '../auth/keys.ts';
import { ConfigError, StartupError } from '../base/errors.ts';
import { createLogger, type Level } from '../base/log.ts';
import { within } from '../base/timeout.ts';
import { createBridge } from '../bridge.ts';
import { type Client, type ClientOptions, createClient } from '../client/client.ts';
import { type Config, parseConfig } from '../config/load.ts';
import { connectSql, type Sql } from '../db/queries.ts';
import { openDatabase } from './database.ts';
import { type Arrival, createRecorder, type Dropped, type Wait } from './recorder.ts';
import { createWatcher, type OpenClient } from './watcher.ts';

export type { Sql } from '../db/queries.ts';
export { type Arrival, type Dropped, NoMessageError } from './recorder.ts';

/** Options of {@link startBridge}. */
export interface StartOptions {
  /**
   * The bridge's `channels.toml`: its text (anything with a line break), a path to it, or a file URL. Schema
   * modules resolve relative to the file, or to the working directory for text. Its `host`, `port`,
   * `workers` and `[database] url` are not used: the kit binds 127.0.0.1 on a free port, in one process.
   */
  readonly config: string | URL;
  /** The database; default `TEST_DATABASE_URL`, and without it a throwaway embedded PostgreSQL. */
  readonly databaseUrl?: string | undefined;
  /** With `[auth]`: the token the kit's watcher connects with (it must read every declared channel); also the default of `client()`. */
  readonly token?: ClientOptions['token'];
  /** Undeclared channels to watch from the start too (others are watched from their first `next`). */
  readonly watch?: readonly string[];
  /** The bridge's log lines at this level and above go to stderr; default `error`. */
  readonly logLevel?: Level;
}

/** A channel's payload type: from `Channels` for a declared one, the raw text for any other. */
export type PayloadOf<Channels, Name extends string> = Name extends keyof Channels ? Channels[Name] : string;

/** How {@link TestBridge.next} waits: a filter on the payload and a deadline (default 2000 ms). */
export interface NextOptions<Payload> {
  readonly where?: Wait<Payload>['where'];
  readonly timeoutMs?: number;
}

/** A running bridge for a test; `await using` stops it and everything it started. */
export interface TestBridge<Channels extends Record<string, unknown>> extends AsyncDisposable {
  /** The bridge's address, `ws://127.0.0.1:PORT`: multiplexed clients there, a plain channel at `/NAME`. */
  readonly url: string;
  /** The database the bridge uses: the given one, or the embedded one the kit started. */
  readonly databaseUrl: string;
  /** A postgres.js client on that database, for the test's own statements; ended with the bridge. */
  readonly sql: Sql;
  /**
   * The next message on `channel` that arrives after this call (and that `where` accepts), as subscribers
   * get it: the validated, parsed payload on schema channels, the text on raw ones. Rejects after `timeoutMs`
   * with a {@link NoMessageError} listing what did arrive and every payload dropped as invalid, with its issues.
   * Declared channels are watched from the start; an undeclared one from its first `next` (or `watch`).
   */
  next<Name extends string>(
    channel: Name,
    options?: NextOptions<PayloadOf<Channels, Name>>,
  ): Promise<Arrival<PayloadOf<Channels, Name>>>;
  /** The payloads dropped as invalid on `channel` so far (not JSON, or failing its schema), with their issues. */
  invalid(channel: string): readonly Dropped[];
  /** A typed client (`pg-notify-ws/client`) connected to this bridge, closed with it. */
  client(options?: Partial<ClientOptions>): Client<Channels>;
  /** Stops the clients, the bridge, `sql` and the embedded database, in that order. */
  stop(): Promise<void>;
}

// The bridge and its watches are up within this, or the database is not answering.
const START_TIMEOUT_MS = 20_000;
const NEXT_TIMEOUT_MS = 2000;

/**
 * Starts a bridge for a test and resolves once it serves and every declared channel is watched, so a test may
 * write at once. `Channels` is the type `pg-notify-ws types` writes, for typed payloads.
 */
export async function startBridge<Channels extends Record<string, unknown> = Record<string, unknown>>(
  options: StartOptions,
): Promise<TestBridge<Channels>> {
  await using cleanup = new AsyncDisposableStack();
  const config = await loadConfig(options.config);
  const database = await openDatabase(options.databaseUrl, process.env);
  cleanup.defer(() => database.stop());
  const sql = connectSql(database.url);
  cleanup.defer(() => sql.end({ timeout: 1 }));
  const recorder = createRecorder();
  const log = createLogger({
    level: options.logLevel ?? 'error',
    write: (line) => process.stderr.write(`${line}\n`),
  });
  const keys =
    config.auth === undefined
      ? undefined
      : await resolveKeys(config.auth, {
          label: basename(config.file),
          directory: dirname(config.file),
          env: process.env,
          readText: (path) => Bun.file(path).text(),
        });
  const bridge = await createBridge({
    config: { ...config, server: { ...config.server, host: '127.0.0.1', port: 0 } },
    databaseUrl: database.url,
    log,
    onInvalid: recorder.dropped,
    ...(keys === undefined ? {} : { authKeys: keys.keys }),
  });
  cleanup.defer(() => bridge.stop());
  const url = `ws://${bridge.url.host}`;
  const clients: Client<Channels>[] = [];
  cleanup.defer(async () => {
    recorder.close();
    await Promise.allSettled(clients.map((client) => client.close()));
  });
  const client = (extra: Partial<ClientOptions> = {}) => {
    const created = createClient<Channels>({
      url,
      ...(options.token === undefined ? {} : { token: options.token }),
      ...extra,
    });
    clients.push(created);
    return created;
  };

  const watcher = createWatcher(client as OpenClient, recorder);

  const starting = async () => {
    await bridge.ready;
    await Promise.all([...config.channels.keys(), ...(options.watch ?? [])].map(watcher.watch));
  };
  await within(starting(), START_TIMEOUT_MS, () => {
    const { refused } = watcher;
    const why =
      refused === undefined
        ? `is the database at ${URL.canParse(database.url) ? new URL(database.url).host : 'its URL'} answering?`
        : `its watcher was refused: ${refused.code}: ${refused.message} (with [auth], pass a token that reads every declared channel)`;
    throw new StartupError(`startBridge: the bridge was not serving within ${START_TIMEOUT_MS / 1000} s; ${why}`);
  });

  const stop = (() => {
    const resources = cleanup.move();
    let stopped: Promise<void> | undefined;
    return () => {
      stopped ??= resources.disposeAsync();
      return stopped;
    };
  })();
  const next: TestBridge<Channels>['next'] = (channel, nextOptions = {}) => {
    const site: { stack?: string } = {};
    Error.captureStackTrace(site, next);
    return recorder.next(channel, {
      where: nextOptions.where as Wait<unknown>['where'],
      timeoutMs: nextOptions.timeoutMs ?? NEXT_TIMEOUT_MS,
      watched: watcher.watch(channel),
      calledFrom: site.stack?.slice(site.stack.indexOf('\n') + 1),
    }) as Promise<Arrival<PayloadOf<Channels, typeof channel>>>;
  };
  return {
    url,
    databaseUrl: database.url,
    sql,
    next,
    invalid: recorder.invalid,
    client,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** The config from its text or its file; a text's schema modules resolve from the working directory. */
async function loadConfig(config: string | URL): Promise<Config> {
  if (typeof config === 'string' && config.includes('\n')) return parseConfig(config, resolve('channels.toml'));
  const file = config instanceof URL ? fileURLToPath(config) : resolve(config);
  const text = await Bun.file(file)
    .text()
    .catch(() => undefined);
  if (text === undefined) throw new ConfigError(`${file}: cannot read the config file`);
  return parseConfig(text, file);
}
