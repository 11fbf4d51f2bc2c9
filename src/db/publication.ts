/**
 * What `[database] ingest = "replication"` needs of the database, checked on the replication connection
 * before its slot is made: `wal_level = logical`, a role with REPLICATION (checked by PostgreSQL itself when
 * the connection starts, see {@link refusalOf}), and the publication of `pgws.messages`, created here when
 * missing. Each shortfall is one line that says what to change.
 */

import { FORBIDDEN, sqlState } from './reads.ts';

/** The publication of `pgws.messages` that every bridge of the database reads through its own slot. */
export const PUBLICATION = 'pgws_messages';

/** Runs one statement on the replication connection (simple protocol), resolving to its rows. */
export type Run = (statement: string) => Promise<readonly Record<string, unknown>[]>;

/** Prefix of every refusal: which setting brought the requirement. */
const NEEDS = '[database] ingest = "replication"';
const OR_NOTIFY = 'or set [database] ingest = "notify"';

/**
 * The statement that creates the publication. Inserts only (the bridge reads nothing else), and from
 * PostgreSQL 15 on only the columns it reads: payloads stay out of the replication stream.
 */
export const createPublication = (serverVersion: number): string =>
  `CREATE PUBLICATION ${PUBLICATION} FOR TABLE pgws.messages${serverVersion >= 150_000 ? ' (channel, seq)' : ''} WITH (publish = 'insert')`;

/** Checks `wal_level` and makes the publication if missing; a refusal's line, or undefined when all is set. */
export async function prepare(run: Run, role: string): Promise<string | undefined> {
  const [settings] = await run(
    `SELECT current_setting('wal_level') AS wal_level, current_setting('server_version_num')::int AS version,
            EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '${PUBLICATION}') AS published,
            to_regclass('pgws.messages') IS NOT NULL AS installed`,
  );
  const level = String(settings?.['wal_level']);
  if (level !== 'logical')
    return `${NEEDS} needs wal_level = logical, and the server has ${level}: run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL, ${OR_NOTIFY}`;
  if (settings?.['installed'] !== true)
    return `${NEEDS} reads pgws.messages, which this database does not have: run \`bun run sql\` on it, ${OR_NOTIFY}`;
  if (settings['published'] === true) return undefined;
  const statement = createPublication(Number(settings['version']));
  try {
    await run(statement);
    return undefined;
  } catch (error) {
    // Another bridge made it between our look and our CREATE.
    if (sqlState(error) === '42710') return undefined;
    if (sqlState(error) !== FORBIDDEN) throw error;
    return `${NEEDS} needs the publication ${PUBLICATION}, and role "${role}" may not create it (${messageOf(error)}): run \`${statement}\` as the owner of pgws.messages, ${OR_NOTIFY}`;
  }
}

/**
 * A failed connect or statement that only the operator can fix, as its refusal line; undefined for the rest
 * (the database down, a restart), which are retried. PostgreSQL refuses a replication connection to a role
 * without REPLICATION with insufficient_privilege as it starts.
 */
export function refusalOf(error: unknown, role: string): string | undefined {
  // "must be superuser or replication role to start walsender" (up to 15), "permission denied to start WAL sender" (16 on).
  if (sqlState(error) === FORBIDDEN && /replication|wal ?sender/i.test(messageOf(error)))
    return `${NEEDS} needs a role with the REPLICATION attribute, and "${role}" has not: run ALTER ROLE "${role}" REPLICATION as a superuser, ${OR_NOTIFY}`;
  if (sqlState(error) === '55000' && /wal_level/.test(messageOf(error)))
    return `${NEEDS} needs wal_level = logical (${messageOf(error)}): run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL, ${OR_NOTIFY}`;
  return undefined;
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
