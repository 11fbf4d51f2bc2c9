/**
 * The database a kit bridge runs on: the URL it was given, else `TEST_DATABASE_URL`, else a throwaway embedded
 * PostgreSQL of its own, removed when the bridge stops.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { grantTraversal, startEmbeddedPostgres } from '../db/embedded.ts';

/** A database in use; `stop` removes it if the kit started it, and leaves a given one alone. */
export interface KitDatabase {
  readonly url: string;
  /** Whether it is a throwaway embedded PostgreSQL of the kit's own. */
  readonly embedded: boolean;
  stop(): Promise<void>;
}

/**
 * The database to use: `given`, or `env.TEST_DATABASE_URL`, or an embedded PostgreSQL started in a new temp
 * directory. As root the embedded server runs as the `postgres` user, so the directories on the way to its
 * binaries and data get the execute bit for others, as in this project's own test setup (`grantTraversal`).
 */
export async function openDatabase(given: string | undefined, env: NodeJS.ProcessEnv): Promise<KitDatabase> {
  const url = given || env['TEST_DATABASE_URL'];
  if (url) return { url, embedded: false, stop: async () => {} };
  const dataDir = mkdtempSync(join(tmpdir(), 'pgws-kit-'));
  try {
    const granted = grantTraversal(dataDir);
    if (granted.length > 0)
      process.stderr.write(`pg-notify-ws/testing: allowed the postgres user to enter ${granted.join(', ')}\n`);
    const db = await startEmbeddedPostgres({ dataDir, persistent: false });
    return {
      url: db.url,
      embedded: true,
      async stop() {
        try {
          await db.stop();
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}
