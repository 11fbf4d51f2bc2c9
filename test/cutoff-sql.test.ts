/**
 * The cut-off half of `bun run sql` against a real PostgreSQL (docs/PROTOCOL.md, "Cutting a subject off"):
 * `pgws.disconnect`, `pgws.revoke` and `pgws.unrevoke`, their tables, what they notify, who may call them,
 * and the bridge's reads of what they wrote. Each test runs in a database of its own.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { CONTROL_CHANNEL } from '../src/base/name.ts';
import { createQueries } from '../src/db/queries.ts';
import { INSTALL_SQL } from '../src/db/script.ts';
import { databaseUrl, within } from './harness.ts';
import { installPgws, type ScratchDatabase, scratchDatabase } from './pgws.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const FUNCTIONS = ['pgws.disconnect(text, text)', 'pgws.revoke(text, timestamptz)', 'pgws.unrevoke(text)'];

/** A scratch database with pgws installed, and a session LISTENing on the control channel. */
async function installed() {
  const db = await scratchDatabase();
  await installPgws(db.url);
  const listener = postgres(db.url, { max: 1, onnotice: () => {} });
  const hints: unknown[] = [];
  let wake = Promise.withResolvers<void>();
  await listener.listen(CONTROL_CHANNEL, (payload) => {
    hints.push(JSON.parse(payload));
    wake.resolve();
    wake = Promise.withResolvers<void>();
  });
  return {
    db,
    sql: db.sql,
    async hinted(count: number) {
      while (hints.length < count) await within(wake.promise, 5000, `${count} hints on ${CONTROL_CHANNEL}`);
      return hints.slice(0, count);
    },
    async [Symbol.asyncDispose]() {
      await listener.end({ timeout: 1 });
      await db[Symbol.asyncDispose]();
    },
  };
}

/** Roles of a test's own, dropped afterwards (roles belong to the server, not to one database). */
async function withRoles<const N extends string>(names: N[], body: (roles: Record<N, string>) => Promise<void>) {
  const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 6)}`;
  const roles = Object.fromEntries(names.map((name) => [name, `pgws_${name}_${suffix}`])) as Record<N, string>;
  const admin = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  try {
    for (const role of Object.values<string>(roles)) await admin.unsafe(`CREATE ROLE "${role}" NOLOGIN`);
    await body(roles);
  } finally {
    // Owned objects live in the scratch databases, which are dropped first.
    for (const role of Object.values<string>(roles)) await admin.unsafe(`DROP ROLE IF EXISTS "${role}"`);
    await admin.end({ timeout: 1 });
  }
}

/** Runs `body` in a session of `db` acting as `role`. */
async function as(db: ScratchDatabase, role: string, body: (sql: postgres.Sql) => Promise<void>) {
  const session = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await session.unsafe(`SET ROLE "${role}"`);
    await body(session);
  } finally {
    await session.end({ timeout: 1 });
  }
}

describe('pgws.disconnect, pgws.revoke and pgws.unrevoke', () => {
  test('pgws.revoke writes a row the operator can read, moves `before` only later, and notifies a hint naming the subject', async () => {
    await using t = await installed();
    const [first] = await t.sql`SELECT pgws.revoke('alice') AS before`;
    await t.sql`SELECT pgws.revoke('alice', before => '2000-01-01')`;
    const [rows] = await t.sql`SELECT subject, before, revoked_by FROM pgws.revocations`;
    expect(rows).toEqual({ subject: 'alice', before: first?.['before'], revoked_by: expect.any(String) });
    const later = await t.sql`SELECT pgws.revoke('alice', now() + interval '1 day') AS before`;
    expect(later[0]?.['before'].getTime()).toBeGreaterThan(first?.['before'].getTime());
    expect(await t.hinted(3)).toEqual([{ revocation: 'alice' }, { revocation: 'alice' }, { revocation: 'alice' }]);
  });

  test('pgws.unrevoke deletes the row, says whether there was one, and notifies only when there was', async () => {
    await using t = await installed();
    await t.sql`SELECT pgws.revoke('bob')`;
    const [answers] = await t.sql`SELECT pgws.unrevoke('bob') AS was, pgws.unrevoke('nobody') AS none`;
    expect(answers).toEqual({ was: true, none: false });
    expect((await t.sql`SELECT * FROM pgws.revocations`).length).toBe(0);
    await t.sql`SELECT pgws.revoke('marker')`;
    expect(await t.hinted(3)).toEqual([{ revocation: 'bob' }, { revocation: 'bob' }, { revocation: 'marker' }]);
  });

  test('pgws.disconnect keeps a row per call with its reason, notifies its id, and prunes rows older than an hour', async () => {
    await using t = await installed();
    await t.sql`SELECT pgws.disconnect('carol', 'password changed'), pgws.disconnect('dave')`;
    const rows = await t.sql`SELECT id, subject, reason FROM pgws.disconnects ORDER BY id`;
    expect(rows.map((row) => [row['subject'], row['reason']])).toEqual([
      ['carol', 'password changed'],
      ['dave', null],
    ]);
    expect(await t.hinted(2)).toEqual(rows.map((row) => ({ disconnect: Number(row['id']) })));
    await t.sql`UPDATE pgws.disconnects SET made_at = now() - interval '2 hours' WHERE subject = 'carol'`;
    await t.sql`SELECT pgws.disconnect('erin')`;
    expect((await t.sql`SELECT subject FROM pgws.disconnects ORDER BY id`).map((row) => row['subject'])).toEqual([
      'dave',
      'erin',
    ]);
  });

  test.each([
    ["SELECT pgws.revoke('')", 'pgws.revoke: subject must not be empty'],
    ['SELECT pgws.revoke(NULL)', 'pgws.revoke: subject must not be empty'],
    ["SELECT pgws.disconnect('')", 'pgws.disconnect: subject must not be empty'],
  ])('%s fails with a message naming the function', async (statement, message) => {
    await using t = await installed();
    await expect(t.sql.unsafe(statement)).rejects.toThrow(message);
  });

  test('by default no one but the owner may call them, a granted role may without any privilege on the tables, and a re-run keeps the grant', async () => {
    await withRoles(['operator', 'writer'], async ({ operator, writer }) => {
      await using db = await scratchDatabase();
      await installPgws(db.url);
      const callable = async (role: string) => {
        const checks = FUNCTIONS.map((f) => `has_function_privilege('${role}', '${f}', 'EXECUTE')`).join(', ');
        const [row] = await db.sql.unsafe(`SELECT ARRAY[${checks}] AS allowed`);
        return row?.['allowed'];
      };
      expect(await callable(writer)).toEqual([false, false, false]);
      await as(db, writer, async (sql) => {
        await expect(sql`SELECT pgws.revoke('alice')`).rejects.toThrow('permission denied');
      });
      await db.sql.unsafe(`GRANT EXECUTE ON FUNCTION ${FUNCTIONS.join(', ')} TO "${operator}"`);
      await installPgws(db.url);
      expect(await callable(operator)).toEqual([true, true, true]);
      await as(db, operator, async (sql) => {
        await sql`SELECT pgws.revoke('alice'), pgws.disconnect('alice', 'by the operator')`;
        await expect(sql`SELECT * FROM pgws.revocations`).rejects.toThrow('permission denied');
      });
      const [row] = await db.sql`SELECT revoked_by FROM pgws.revocations WHERE subject = 'alice'`;
      expect(row?.['revoked_by']).toBe(new URL(databaseUrl()).username || 'postgres');
    });
  });

  test('installing over an older pgws (pgws.notify only) adds them, still not executable by PUBLIC', async () => {
    await using db = await scratchDatabase();
    await installPgws(db.url);
    await db.sql.unsafe(
      `DROP FUNCTION ${FUNCTIONS.join(', ')}; DROP TABLE pgws.revocations, pgws.disconnects; GRANT EXECUTE ON FUNCTION pgws.notify(text, text) TO PUBLIC`,
    );
    await db.sql.unsafe(INSTALL_SQL).simple();
    const [row] = await db.sql.unsafe(
      `SELECT ARRAY[${FUNCTIONS.map((f) => `has_function_privilege('public', '${f}', 'EXECUTE')`).join(', ')}] AS public`,
    );
    expect(row?.['public']).toEqual([false, false, false]);
    await db.sql`SELECT pgws.revoke('alice')`;
  });
});

describe("the bridge's reads of them", () => {
  test('read nothing as missing without pgws, and as forbidden for a role without SELECT, until it is granted', async () => {
    await withRoles(['bridge'], async ({ bridge }) => {
      await using bare = await scratchDatabase();
      const queries = createQueries(bare.url);
      expect(await queries.loadCutoffs()).toMatchObject({ ok: false, reason: 'missing' });
      await queries.end();
      await using db = await scratchDatabase();
      await installPgws(db.url);
      // postgres.js passes `role` on as a startup parameter: the session acts as that role.
      const asBridge = createQueries(`${db.url}?role=${bridge}`);
      try {
        expect(await asBridge.loadCutoffs()).toMatchObject({ ok: false, reason: 'forbidden' });
        await db.sql.unsafe(`GRANT SELECT ON pgws.revocations, pgws.disconnects TO "${bridge}"`);
        expect(await asBridge.loadCutoffs()).toEqual({ ok: true, value: { revocations: [], disconnects: [] } });
      } finally {
        await asBridge.end();
      }
    });
  });

  test('one snapshot holds every revocation as ms since the epoch (infinity included) and the disconnects kept', async () => {
    await using t = await installed();
    await t.sql`SELECT pgws.revoke('alice', '2030-01-01T00:00:00Z'), pgws.revoke('forever', 'infinity')`;
    await t.sql`SELECT pgws.disconnect('bob', 'bye')`;
    const queries = createQueries(t.db.url);
    try {
      const loaded = await queries.loadCutoffs();
      expect(loaded).toEqual({
        ok: true,
        value: {
          revocations: expect.arrayContaining([
            ['alice', Date.parse('2030-01-01T00:00:00Z')],
            ['forever', Number.POSITIVE_INFINITY],
          ]),
          disconnects: [{ id: expect.any(Number), subject: 'bob', reason: 'bye' }],
        },
      });
      const id = loaded.ok ? (loaded.value.disconnects[0]?.id ?? 0) : 0;
      expect(await queries.readDisconnect(id)).toEqual({ ok: true, value: { id, subject: 'bob', reason: 'bye' } });
      expect(await queries.readDisconnect(id + 1000)).toEqual({ ok: true, value: undefined });
      expect(await queries.readRevocation('alice')).toEqual({ ok: true, value: Date.parse('2030-01-01T00:00:00Z') });
      expect(await queries.readRevocation('nobody')).toEqual({ ok: true, value: undefined });
    } finally {
      await queries.end();
    }
  });
});
