/**
 * The command line: `bun run start [--config FILE]` and `bun run check [--config FILE]`.
 *
 * The only file that reads argv, the environment, files and signals. Everything else is passed down.
 * Exit codes: 0 after a clean shutdown or a good check, 2 for a config or usage error, 1 otherwise.
 */
import { basename, dirname, join, resolve } from 'node:path';
import * as valibot from 'valibot';
import packageJson from '../package.json' with { type: 'json' };
import { resolveKeys } from './auth/keys.ts';
import { ConfigError, StartupError } from './base/errors.ts';
import { createLogger, type Logger, parseLevel } from './base/log.ts';
import { within } from './base/timeout.ts';
import { createBridge } from './bridge.ts';
import { durableChannels } from './channels/catalog.ts';
import { parseArguments, readConfigFile, runTool } from './cli/entry.ts';
import { bundleClient } from './client/bundle.ts';
import type { ToPrimary, ToWorker } from './cluster/messages.ts';
import { type Config, parseConfig } from './config/load.ts';
import { describeConfig } from './config/summary.ts';
import { startEmbeddedPostgres } from './db/embedded.ts';
import { connectAdmin } from './db/queries.ts';
import { INSTALL_SQL } from './db/script.ts';
import { MISSING_SEND } from './delivery/durable.ts';
import { ingestRefusal } from './delivery/ingest.ts';
import { startTracing } from './tracing.ts';
import { exitWithParent, spawnWorkers, WORKER_ENV } from './workers.ts';

const SHUTDOWN_DEADLINE_MS = 4500;

// Set by `bun run build` (cli/build.ts) in the single binary, which has no files of its own to read; from
// source they are undefined, and the console is read and the client bundled at startup instead.
declare const PGWS_CONSOLE_HTML: string | undefined;
declare const PGWS_CLIENT_JS: string | undefined;
declare const PGWS_BINARY: boolean | undefined;

/**
 * In the single binary there is no node_modules: a module schema's `import ... from 'valibot'` is served
 * the binary's own valibot, so schema modules load at runtime from beside the config with nothing installed.
 */
function provideValibot(): void {
  Bun.plugin({
    name: 'valibot from the binary',
    setup(build) {
      build.module('valibot', () => ({ exports: valibot, loader: 'object' }));
    },
  });
}

async function main(): Promise<number> {
  if (typeof PGWS_BINARY === 'boolean' && PGWS_BINARY) provideValibot();
  const { values } = parseArguments({
    config: { type: 'string', default: 'channels.toml' },
    check: { type: 'boolean', default: false },
  });
  const file = resolve(values.config);
  const env = process.env;
  const level = env['LOG_LEVEL'] ? tryLevel(env['LOG_LEVEL']) : 'info';
  const log = createLogger({
    level,
    pretty: process.stdout.isTTY === true,
    write: (line) => process.stdout.write(`${line}\n`),
  });

  const { text } = await readConfigFile(values.config);
  const config = withEnvironment(await parseConfig(text, file), env);
  const auth =
    config.auth === undefined
      ? undefined
      : await resolveKeys(config.auth, {
          label: basename(file),
          directory: dirname(file),
          env,
          readText: (path) => Bun.file(path).text(),
        });

  if (values.check) {
    process.stdout.write(describeConfig(config, auth?.description));
    return 0;
  }

  // Listen for signals before anything starts, so one during startup still shuts down cleanly.
  const { promise: signalled, resolve: onSignal } = Promise.withResolvers<NodeJS.Signals>();
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));

  const worker = env[WORKER_ENV];
  // Off unless OTEL_TRACES_EXPORTER or an OTLP endpoint asks for traces; workers read the same environment.
  const tracing = await startTracing(env, packageJson.version);
  if (tracing !== undefined && worker === undefined) log.info(`tracing: spans to ${tracing.exporting}`);
  const embedded = config.database.url === undefined ? await startDevelopmentDatabase(log) : undefined;
  const databaseUrl = config.database.url ?? embedded?.url ?? '';
  if (worker === undefined) await checkDurable(config, databaseUrl, embedded !== undefined, log);
  // Exit 2, as for a config error: the config asks for what this database is not set up for. Workers follow a
  // primary that already looked.
  const refusal = worker === undefined ? await ingestRefusal(config, databaseUrl) : undefined;
  if (refusal !== undefined) {
    await embedded?.stop();
    throw new ConfigError(refusal);
  }
  const consoleHtml =
    typeof PGWS_CONSOLE_HTML === 'string'
      ? PGWS_CONSOLE_HTML
      : await Bun.file(join(import.meta.dir, '..', 'console.html'))
          .text()
          .catch(() => undefined);
  const workerLog = worker === undefined ? log : log.child(`worker-${worker}`);
  const bridge = await createBridge({
    config,
    databaseUrl,
    log: workerLog,
    reusePort: config.server.workers > 1,
    openFiles: await openFileLimit(),
    listenAfterDatabase: worker !== undefined,
    ...(worker !== undefined
      ? {
          cluster: {
            role: 'worker' as const,
            send: (message: ToPrimary) => void process.send?.(message),
            onMessage: (handler: (message: ToWorker) => void) =>
              void process.on('message', (message) => handler(message as ToWorker)),
          },
        }
      : config.server.workers > 1
        ? { cluster: { role: 'primary' as const } }
        : {}),
    ...(auth === undefined ? {} : { authKeys: auth.keys }),
    ...(tracing === undefined ? {} : { tracer: tracing.tracer }),
    version: packageJson.version,
    ...(consoleHtml === undefined ? {} : { consoleHtml }),
    clientJs: typeof PGWS_CLIENT_JS === 'string' ? PGWS_CLIENT_JS : await bundleClient(),
  });
  const workers =
    bridge.cluster !== undefined
      ? spawnWorkers({
          cluster: bridge.cluster,
          count: config.server.workers,
          // From source: bun, the script, its arguments. The binary's argv[1] is its own embedded path, not an argument.
          command:
            typeof PGWS_BINARY === 'boolean' && PGWS_BINARY
              ? [process.execPath, ...Bun.argv.slice(2)]
              : [process.execPath, ...process.argv.slice(1)],
          // Workers bind the port the primary got (PORT=0 picks one) and share its database.
          env: { ...env, PORT: bridge.url.port, DATABASE_URL: databaseUrl },
          log,
        })
      : undefined;
  if (worker !== undefined) exitWithParent(() => process.kill(process.pid, 'SIGTERM'));
  if (worker === undefined) {
    const { host, port, url } = bridge.bound;
    const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    log.info(`ready: listening on ${where} (console ${url.href}, WebSocket ws://${url.host}/<channel>)`, {
      host,
      port,
      url: url.href,
      channels: config.channels.size,
      workers: config.server.workers,
    });
  }

  const signal = await signalled;
  log.info('shutting down', { signal });
  // A stuck database must not keep the process past the deadline the deploy tooling expects.
  const deadline = setTimeout(() => {
    log.error('shutdown deadline passed; exiting anyway');
    process.exit(1);
  }, SHUTDOWN_DEADLINE_MS);
  await Promise.all([bridge.stop(), workers?.stop(signal)]);
  // Spans still queued (the last deliveries) are exported first, for at most a second: a collector that
  // is down must not hold the shutdown past its deadline.
  if (tracing !== undefined) await within(tracing.shutdown(), 1000, () => undefined);
  await embedded?.stop();
  clearTimeout(deadline);
  log.info('stopped');
  return 0;
}

function tryLevel(text: string) {
  try {
    return parseLevel(text);
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
}

/** `DATABASE_URL`, `PORT` and `HOST` override the file, as twelve-factor deploys expect. */
function withEnvironment(config: Config, env: NodeJS.ProcessEnv): Config {
  const port = env['PORT'];
  if (port !== undefined && !/^\d{1,5}$/.test(port))
    throw new ConfigError(`PORT: expected a port number, got "${port}"`);
  return {
    ...config,
    server: {
      ...config.server,
      host: env['HOST'] || config.server.host,
      port: port === undefined ? config.server.port : Number(port),
    },
    database: { ...config.database, url: env['DATABASE_URL'] || config.database.url },
  };
}

/**
 * docs/PROTOCOL.md "Durable channels": a config with a durable channel on a database without pgws.send stops
 * at startup, saying to run `bun run sql`. The embedded development database gets the script instead (it is
 * idempotent). A database that does not answer yet is left to the reader, which reports the same once it does.
 */
async function checkDurable(config: Config, url: string, development: boolean, log: Logger): Promise<void> {
  if (durableChannels(config).length === 0) return;
  const admin = connectAdmin(url);
  try {
    if (development) return void (await admin.script(INSTALL_SQL));
    const [row] = await within(
      admin.rows(`SELECT to_regprocedure('pgws.send(text, text)') IS NOT NULL AS ok`),
      5000,
      () => [],
    );
    if (row !== undefined && row['ok'] !== true) throw new StartupError(MISSING_SEND);
  } catch (error) {
    if (error instanceof StartupError) throw error;
    log.debug('could not check for pgws.send at startup', { error });
  } finally {
    await admin.end();
  }
}

/** The soft limit on open files (`ulimit -n`), from /proc on Linux; undefined where it cannot be read. */
async function openFileLimit(): Promise<number | undefined> {
  const limits = await Bun.file('/proc/self/limits')
    .text()
    .catch(() => '');
  const soft = /^Max open files\s+(\d+)/m.exec(limits)?.[1];
  return soft === undefined ? undefined : Number(soft);
}

async function startDevelopmentDatabase(log: Logger) {
  if (typeof PGWS_BINARY === 'boolean' && PGWS_BINARY) {
    throw new ConfigError(
      'no database configured: set DATABASE_URL or [database] url (the embedded development PostgreSQL is a `bun run start` feature, not in the single binary)',
    );
  }
  const dataDir = resolve('.data', 'postgres');
  log.warn(
    'no database configured: starting the embedded development PostgreSQL (data in .data/); set DATABASE_URL or [database] url to use a real server',
  );
  const db = await startEmbeddedPostgres({ dataDir, port: 54329 });
  log.info(`embedded PostgreSQL ready: psql ${db.url}`, { url: db.url });
  return db;
}

runTool(main, { stack: true });
