/**
 * The install script of pgws.notify against a real PostgreSQL: idempotent, safe to run concurrently,
 * installable without superuser, and the 8000-byte boundary counted in bytes. `bun run sql` prints it.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import postgres from 'postgres';
import { MARKER, referenceId } from '../src/channels/reference.ts';
import { INSTALL_SQL } from '../src/db/script.ts';
import { databaseUrl, uniqueChannel, within } from './harness.ts';
import { installPgws, scratchDatabase } from './pgws.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const root = join(import.meta.dir, '..');

/** Listens on a channel of the test database and collects payloads. */
async function listen(channel: string) {
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  const payloads: string[] = [];
  let wake = Promise.withResolvers<void>();
  const { unlisten } = await sql.listen(channel, (payload) => {
    payloads.push(payload);
    wake.resolve();
    wake = Promise.withResolvers<void>();
  });
  return {
    sql,
    async received(count: number) {
      while (payloads.length < count) await within(wake.promise, 5000, `${count} notifications on ${channel}`);
      return payloads.slice(0, count);
    },
    async [Symbol.asyncDispose]() {
      await unlisten();
      await sql.end({ timeout: 1 });
    },
  };
}

describe('the install script', () => {
  test('`bun run sql` prints it, plain SQL without psql meta-commands, and refuses arguments with exit 2', async () => {
    const printed = Bun.spawnSync([process.execPath, 'src/cli/sql.ts'], { cwd: root });
    expect(printed.exitCode).toBe(0);
    expect(printed.stdout.toString()).toBe(INSTALL_SQL);
    expect(INSTALL_SQL.split('\n').filter((line) => line.trimStart().startsWith('\\'))).toEqual([]);
    const refused = Bun.spawnSync([process.execPath, 'src/cli/sql.ts', '--nope'], { cwd: root });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr.toString().trim().split('\n').length).toBe(1);
  });

  test('runs twice on a fresh database as one multi-statement query, leaving one working pgws.notify', async () => {
    await using db = await scratchDatabase();
    await installPgws(db.url);
    await db.sql`SELECT pgws.notify('c', ${'x'.repeat(9000)})`;
    await installPgws(db.url);
    const [row] = await db.sql`
      SELECT (SELECT count(*) FROM pg_proc WHERE proname = 'notify' AND pronamespace = 'pgws'::regnamespace)::int AS functions,
             (SELECT count(*) FROM pgws.payloads)::int AS rows,
             (SELECT prosecdef FROM pg_proc WHERE oid = 'pgws.notify(text,text)'::regprocedure) AS definer`;
    expect(row).toEqual({ functions: 1, rows: 1, definer: true });
  });

  test('concurrent installs on a fresh database wait for each other and all succeed', async () => {
    await using db = await scratchDatabase();
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => installPgws(db.url)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
  });

  test('installs without superuser; a writer needs only EXECUTE, and cannot read the stored payloads', async () => {
    const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 6)}`;
    const [installer, writer, reader] = ['installer', 'writer', 'reader'].map((r) => `pgws_${r}_${suffix}`);
    const admin = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      for (const role of [installer, writer, reader]) await admin.unsafe(`CREATE ROLE "${role}" NOLOGIN`);
      await using db = await scratchDatabase();
      const name = new URL(db.url).pathname.slice(1);
      await admin.unsafe(`GRANT CREATE ON DATABASE "${name}" TO "${installer}"`);
      const session = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        await session.unsafe(`SET ROLE "${installer}"`);
        await session.unsafe(INSTALL_SQL).simple();
        await session.unsafe(`GRANT SELECT, DELETE ON pgws.payloads TO "${reader}"`);
        await session.unsafe(`SET ROLE "${writer}"`);
        await session`SELECT pgws.notify('c', ${'w'.repeat(9000)})`;
        expect(session`SELECT * FROM pgws.payloads`).rejects.toThrow('permission denied');
        await session.unsafe(`SET ROLE "${reader}"`);
        const [row] = await session`SELECT octet_length(payload) AS bytes FROM pgws.payloads`;
        expect(Number(row?.['bytes'])).toBe(9000);
        const [owner] = await session`SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = 'pgws'`;
        expect(owner?.['owner']).toBe(installer);
      } finally {
        await session.end({ timeout: 1 });
      }
    } finally {
      for (const role of [installer, writer, reader]) await admin.unsafe(`DROP ROLE IF EXISTS "${role}"`);
      await admin.end({ timeout: 1 });
    }
  });
});

describe('pgws.notify', () => {
  test.each([
    ['7999 ASCII bytes', 'is notified as it is', 'x'.repeat(7999)],
    ['8000 ASCII bytes', 'is stored, and a reference notified', 'x'.repeat(8000)],
    ['7999 bytes in 3999 two-byte characters and one', 'is notified as it is', `${'é'.repeat(3999)}x`],
    ['8000 bytes in 4000 characters', 'is stored, and a reference notified', 'é'.repeat(4000)],
  ])('a payload of %s %s (the limit is in bytes)', async (_, outcome, payload) => {
    const stored = outcome.startsWith('is stored');
    await installPgws();
    const channel = uniqueChannel('limit');
    await using listener = await listen(channel);
    await listener.sql`SELECT pgws.notify(${channel}, ${payload})`;
    const [received] = await listener.received(1);
    if (!stored) return void expect(received).toBe(payload);
    expect(received?.startsWith(MARKER)).toBe(true);
    const id = referenceId(received ?? '');
    const [row] = await listener.sql`SELECT channel, payload FROM pgws.payloads WHERE id = ${id ?? ''}::uuid`;
    expect(row).toEqual({ channel, payload });
  });

  test('a failing channel name fails the call with pg_notify’s own message and stores nothing', async () => {
    await installPgws();
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      const marker = `bad-${crypto.randomUUID()}`;
      expect(sql`SELECT pgws.notify('', ${marker.repeat(500)})`).rejects.toThrow('channel name cannot be empty');
      const [row] = await sql`SELECT count(*)::int AS n FROM pgws.payloads WHERE payload LIKE ${`${marker}%`}`;
      expect(row?.['n']).toBe(0);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
