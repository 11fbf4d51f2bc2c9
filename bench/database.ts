/**
 * The benchmark's PostgreSQL: by default a throwaway embedded one (src/db/embedded.ts) in a temp dir,
 * deleted at the end; BENCH_DATABASE_URL points the run at an existing server instead.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { grantTraversal, startEmbeddedPostgres } from '../src/db/embedded.ts';
import { INSTALL_SQL } from '../src/db/script.ts';
import { parentOf, processTree } from './procstat.ts';

/** The database under the benchmark. */
export type BenchDatabase = Awaited<ReturnType<typeof startDatabase>>;

/** Starts (or connects to) the database and reads its version. */
export async function startDatabase(env: Record<string, string | undefined>) {
  const override = env['BENCH_DATABASE_URL'] || undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'pgws-bench-pg-'));
  // As root the embedded server runs as "postgres", which must be able to enter this checkout.
  if (override === undefined) grantTraversal(dataDir);
  const embedded = override === undefined ? await startEmbeddedPostgres({ dataDir, persistent: false }) : undefined;
  const url = embedded?.url ?? override ?? '';
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  let version: string;
  let postmaster: number | undefined;
  try {
    const [row] = await sql`SELECT current_setting('server_version') AS version, pg_backend_pid() AS pid`;
    version = String(row?.['version']);
    // A backend's parent is the postmaster; its tree is every PostgreSQL process of this server (and
    // only this one, whatever other clusters run here). Read while the backend still exists.
    postmaster = parentOf(Number(row?.['pid']));
  } catch (error) {
    await embedded?.stop();
    const what = embedded === undefined ? `BENCH_DATABASE_URL (${url})` : 'the embedded PostgreSQL';
    throw new Error(`${what} does not answer: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await sql.end({ timeout: 1 });
  }
  return {
    url,
    version,
    embedded: embedded !== undefined,
    /** Its processes now (postmaster and backends), for CPU accounting. */
    processes: () => (postmaster === undefined ? [] : processTree(postmaster)),
    stop: async () => embedded?.stop(),
  };
}

/** Installs schema pgws (`bun run sql`: pgws.notify, pgws.send, …) as one script; idempotent. */
export async function installPgws(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(INSTALL_SQL).simple();
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Deletes durable channels' rows (pgws.messages and pgws.streams) once no bridge reads them any more. */
export async function forget(url: string, channels: readonly string[]): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`DELETE FROM pgws.messages WHERE channel = ANY (${channels})`;
    await sql`DELETE FROM pgws.streams WHERE channel = ANY (${channels})`;
  } finally {
    await sql.end({ timeout: 1 });
  }
}
