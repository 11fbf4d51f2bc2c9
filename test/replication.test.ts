/**
 * The replication connection (`src/db/replication.ts`) against a real PostgreSQL with wal_level = logical:
 * what it reports of committed `pgws.send` calls, its temporary slot, a terminated walsender, and the
 * refusals that name what to change.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { createLogger } from '../src/base/log.ts';
import { createReplication, type Replication, type ReplicationState } from '../src/db/replication.ts';
import { databaseUrl, uniqueChannel, waitFor, within } from './harness.ts';
import { installPgws, scratchDatabase } from './pgws.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

let sql: postgres.Sql;
beforeAll(async () => {
  await installPgws();
  sql = postgres(databaseUrl(), { max: 4, onnotice: () => {} });
});
afterAll(() => sql.end({ timeout: 1 }));

/** A started replication connection that records what it reports. */
function watch(url = databaseUrl(), feedbackMs?: number) {
  const logs: string[] = [];
  const committed: string[] = [];
  const states: ReplicationState[] = [];
  const refusals: Array<{ message: string; first: boolean }> = [];
  const replication: Replication = createReplication({
    url,
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
    log: createLogger({ level: 'debug', write: (line) => logs.push(line) }),
    ...(feedbackMs === undefined ? {} : { feedbackMs }),
  });
  replication.start({
    committed: (channel, seq) => committed.push(`${channel}:${seq}`),
    state: (state) => states.push(state),
    refused: (message, first) => refusals.push({ message, first }),
  });
  return {
    replication,
    committed,
    states,
    refusals,
    logs,
    up: () => waitFor(() => replication.state === 'up', 20_000, 'replication to be up'),
    [Symbol.asyncDispose]: () => replication.stop(),
  };
}

/** The pid of the walsender whose slot is `application_name` pg-notify-ws replication, for this database. */
async function walsenders(): Promise<number[]> {
  const rows = await sql`SELECT pid FROM pg_stat_activity
    WHERE backend_type = 'walsender' AND application_name = 'pg-notify-ws replication' AND datname = current_database()`;
  return rows.map((row) => Number(row['pid']));
}

describe('the replication connection', () => {
  test('reports each committed transaction once per channel with its highest seq, in commit order, and nothing of a rollback', async () => {
    await using watched = watch();
    await watched.up();
    const [a, b] = [uniqueChannel('repl_a'), uniqueChannel('repl_b')];
    await sql`SELECT pgws.send(${a}, 'a1')`;
    await sql.begin(async (tx) => {
      await tx`SELECT pgws.send(${a}, 'a2')`;
      await tx`SELECT pgws.send(${b}, 'b1')`;
      await tx`SELECT pgws.send(${a}, 'a3')`;
    });
    await sql
      .begin(async (tx) => {
        await tx`SELECT pgws.send(${b}, 'rolled back')`;
        throw new Error('roll back');
      })
      .catch(() => {});
    await sql`SELECT pgws.send(${b}, 'b2')`;
    const ours = () => watched.committed.filter((entry) => entry.startsWith(a) || entry.startsWith(b));
    await waitFor(() => ours().length === 4, 10_000, 'four commits reported');
    expect(ours()).toEqual([`${a}:1`, `${a}:3`, `${b}:1`, `${b}:2`]);
  });

  test('streams from a temporary slot of its own, gone when it stops', async () => {
    const watched = watch();
    await watched.up();
    const [pid] = await walsenders();
    const slots =
      await sql`SELECT slot_name, temporary, plugin FROM pg_replication_slots WHERE active_pid = ${pid ?? 0}`;
    expect(slots.map((slot) => [slot['temporary'], slot['plugin']])).toEqual([[true, 'pgoutput']]);
    await watched.replication.stop();
    await waitFor(
      async () =>
        (await sql`SELECT 1 FROM pg_replication_slots WHERE slot_name = ${slots[0]?.['slot_name']}`).length === 0,
      10_000,
      'the slot to go with the connection',
    );
  });

  test('a terminated walsender: down, then up again on a new slot, and what commits after is reported', async () => {
    await using watched = watch();
    await watched.up();
    const pids = await walsenders();
    await sql`SELECT pg_terminate_backend(pid) FROM unnest(${pids}::int[]) AS pid`;
    await waitFor(() => watched.states.includes('down'), 10_000, 'the loss to be reported');
    await watched.up();
    const channel = uniqueChannel('repl_after');
    await sql`SELECT pgws.send(${channel}, 'after')`;
    await waitFor(() => watched.committed.includes(`${channel}:1`), 10_000, 'the commit after the reconnect');
    expect(watched.states.slice(-2)).toEqual(['down', 'up']);
  });

  test('confirms progress, so its slot holds no WAL from before the last status update', async () => {
    await using watched = watch(databaseUrl(), 200);
    await watched.up();
    const channel = uniqueChannel('repl_wal');
    const [pid] = await walsenders();
    const restart = async () =>
      String(
        (
          await sql`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE active_pid = ${pid ?? 0}`
        )[0]?.['lsn'],
      );
    const before = await restart();
    await sql`SELECT pgws.send(${channel}, 'moves the slot')`;
    await waitFor(async () => (await restart()) !== before, 10_000, 'the slot to move past the commit');
  });
});

describe('refusals that name what to change', () => {
  test('a role without REPLICATION is refused before it was ever up, naming ALTER ROLE', async () => {
    const role = `pgws_norepl_${process.pid}`;
    await sql.unsafe(`DROP ROLE IF EXISTS ${role}`);
    await sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'secret'`);
    try {
      const url = new URL(databaseUrl());
      url.username = role;
      url.password = 'secret';
      await using watched = watch(url.href);
      await waitFor(() => watched.refusals.length > 0, 10_000, 'a refusal');
      expect(watched.refusals[0]).toEqual({
        message: `[database] ingest = "replication" needs a role with the REPLICATION attribute, and "${role}" has not: run ALTER ROLE "${role}" REPLICATION as a superuser, or set [database] ingest = "notify"`,
        first: true,
      });
      expect(watched.replication.state).toBe('down');
    } finally {
      await sql.unsafe(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  test('a role that may not create the missing publication is refused, naming the statement to run as the owner', async () => {
    await using db = await scratchDatabase();
    await installPgws(db.url);
    const role = `pgws_nopub_${process.pid}`;
    await sql.unsafe(`DROP ROLE IF EXISTS ${role}`);
    await sql.unsafe(`CREATE ROLE ${role} LOGIN REPLICATION PASSWORD 'secret'`);
    try {
      const url = new URL(db.url);
      url.username = role;
      url.password = 'secret';
      await using watched = watch(url.href);
      await waitFor(() => watched.refusals.length > 0, 10_000, 'a refusal');
      expect(watched.refusals[0]?.message).toStartWith(
        `[database] ingest = "replication" needs the publication pgws_messages, and role "${role}" may not create it (`,
      );
      expect(watched.refusals[0]?.message).toContain('CREATE PUBLICATION pgws_messages FOR TABLE pgws.messages');
      // Once the owner made it, the same role streams.
      await db.sql.unsafe(
        `CREATE PUBLICATION pgws_messages FOR TABLE pgws.messages (channel, seq) WITH (publish = 'insert')`,
      );
      await within(watched.up(), 20_000, 'replication once the publication exists');
    } finally {
      await sql.unsafe(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
    }
  });
});
