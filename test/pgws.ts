/**
 * Test helpers for pgws.notify: installing it (the real script, idempotent and safe while other suites
 * run on the same database), and a database of a test's own (for what must not touch the shared one: a
 * database without pgws, a short TTL that sweeps everything).
 */
import { afterAll, beforeAll } from 'bun:test';
import postgres from 'postgres';
import { INSTALL_SQL } from '../src/db/script.ts';
import { databaseUrl } from './harness.ts';

/** Runs the install script on `url` as one multi-statement query, as a migration tool would. */
export async function installPgws(url = databaseUrl()): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(INSTALL_SQL).simple();
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** A fresh database on the test server, dropped (with its connections) on dispose. */
export interface ScratchDatabase extends AsyncDisposable {
  readonly url: string;
  readonly sql: postgres.Sql;
}

/** Creates a database of the test's own on the suite's server. */
export async function scratchDatabase(): Promise<ScratchDatabase> {
  const name = `pgws_scratch_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  const url = new URL(databaseUrl());
  url.pathname = `/${name}`;
  const sql = postgres(url.href, { max: 2, onnotice: () => {} });
  return {
    url: url.href,
    sql,
    async [Symbol.asyncDispose]() {
      await sql.end({ timeout: 1 });
      // PG 13+: FORCE ends whatever a stopped bridge may have left connected.
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end({ timeout: 1 });
    },
  };
}

/** What a cut-off test file calls `pgws.disconnect`, `pgws.revoke` and `pgws.unrevoke` with. */
export interface Operator {
  /** A session on the test database (pgws installed). */
  readonly sql: postgres.Sql;
  /** A subject no other test uses: `prefix`, a counter and `name`. */
  subject(name?: string): string;
}

/**
 * For a test file that cuts subjects off: installs pgws before its tests, and deletes its subjects'
 * revocations after them (straight from the table: no bridge of the file runs by then), so files sharing
 * the database never see each other's.
 */
export function operator(prefix: string): Operator {
  let sql: postgres.Sql | undefined;
  let count = 0;
  beforeAll(async () => {
    await installPgws();
    sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    if (sql === undefined) return;
    await sql`DELETE FROM pgws.revocations WHERE starts_with(subject, ${prefix})`;
    await sql.end({ timeout: 1 });
  });
  return {
    get sql() {
      if (sql === undefined) throw new Error('operator(): the session exists from beforeAll on');
      return sql;
    },
    subject: (name = 'user') => `${prefix}${++count}_${name}`,
  };
}
