/**
 * Durable channels with `[database] ingest = "replication"`, end to end: messages arrive with no NOTIFY from
 * the writers, and the faults of the LISTEN connection, applied to the replication connection (a terminated
 * walsender, a 20 s outage, a restarted database), end in a catch-up from the table: every message once, in
 * seq order, no `gap`.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { CHANNEL_WAKE } from '../src/channels/reference.ts';
import { freePort } from '../src/db/embedded.ts';
import { databaseUrl, startBridge, startOwnDatabase, uniqueChannel, waitFor, within } from './harness.ts';
import { connectMux, type Frame, type MuxClient } from './mux.ts';
import { installPgws } from './pgws.ts';
import { startTcpProxy } from './proxy.ts';

setDefaultTimeout(90_000);

beforeAll(() => installPgws());

const durable = (channel: string) => `[channels."${channel}"]\ndurable = true\n`;
const REPLICATION = 'ingest = "replication"\nreconnect_min_ms = 20\nreconnect_max_ms = 500';
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A bridge in replication mode on `url`, with replication up and pgws.send told not to NOTIFY. */
async function replicatingBridge(channel: string, url = databaseUrl()) {
  const t = await startBridge(durable(channel), { database: REPLICATION, databaseUrl: url });
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await waitFor(
      async () => (await admin`SELECT wake FROM pgws.streams WHERE channel = ${channel}`)[0]?.['wake'] === false,
      20_000,
      'replication up and wake-ups off',
    );
  } finally {
    await admin.end({ timeout: 1 });
  }
  return t;
}

/** Sends `count` messages `prefix1`… through pgws.send on `sql`, one transaction each. */
async function send(sql: postgres.Sql, channel: string, count: number, prefix = 'm') {
  for (let i = 1; i <= count; i++) await sql`SELECT pgws.send(${channel}, ${`${prefix}${i}`})`;
}

/** Every message arrived once, in seq order, and no `gap` came. */
async function expectAll(client: MuxClient, channel: string, count: number) {
  await client.until(() => client.messages(channel).length >= count, 30_000, `${count} messages on ${channel}`);
  expect(client.messages(channel).map((frame: Frame) => frame.seq)).toEqual(range(1, count));
  expect(client.frames.filter((frame) => frame.type === 'gap')).toEqual([]);
}

/** The walsenders of replication-mode bridges on the test database. */
const walsenders = (sql: postgres.Sql) => sql`SELECT pid FROM pg_stat_activity
  WHERE backend_type = 'walsender' AND application_name = 'pg-notify-ws replication' AND datname = current_database()`;

describe('ingest by replication', () => {
  test('delivers durable messages in order while pgws.send sends no NOTIFY, and plain channels beside them', async () => {
    const channel = uniqueChannel('ingest');
    const plain = uniqueChannel('plain');
    await using t = await replicatingBridge(channel);
    using client = await connectMux(t.url);
    await client.subscribe(channel);
    await client.subscribe(plain);
    await t.notify(plain, 'by NOTIFY');
    expect((await client.received(plain, 1)).map((frame) => frame.payload)).toEqual(['by NOTIFY']);
    const heard: string[] = [];
    const listening = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    await listening.listen(channel, (payload) => heard.push(payload));
    try {
      await send(t.sql, channel, 3);
      await expectAll(client, channel, 3);
      expect(client.messages(channel).map((frame) => frame.payload)).toEqual(['m1', 'm2', 'm3']);
      // Notifications arrive in commit order: the marker arriving alone proves the sends before it notified nobody.
      await t.sql`SELECT pg_notify(${channel}, 'marker')`;
      await waitFor(() => heard.length > 0, 5000, 'the marker');
      expect(heard).toEqual(['marker']);
      expect(heard.some((payload) => payload.startsWith(CHANNEL_WAKE))).toBe(false);
    } finally {
      await listening.end({ timeout: 1 });
    }
  });

  test('a terminated walsender amid 300 writes: each arrives once, in order, no gap', async () => {
    const channel = uniqueChannel('ingest_kill');
    await using t = await replicatingBridge(channel);
    using client = await connectMux(t.url);
    await client.subscribe(channel);
    const writing = send(t.sql, channel, 300);
    await client.until((frames) => frames.length > 50, 20_000, 'the first 50 messages');
    const pids = (await walsenders(t.sql)).map((row) => Number(row['pid']));
    expect(pids.length).toBe(1);
    await t.sql`SELECT pg_terminate_backend(pid) FROM unnest(${pids}::int[]) AS pid`;
    await writing;
    await expectAll(client, channel, 300);
    await waitFor(
      () => t.logs.some((line) => line.includes('replication connection restored')),
      20_000,
      'the reconnect',
    );
  });

  test('a 20 s outage of every connection: /readyz 503 meanwhile, then what was written arrives, no gap', async () => {
    const target = new URL(databaseUrl());
    await using proxy = startTcpProxy({ target: { host: target.hostname, port: Number(target.port || 5432) } });
    const channel = uniqueChannel('ingest_outage');
    await using t = await replicatingBridge(channel, proxy.url(databaseUrl()));
    using client = await connectMux(t.url);
    await client.subscribe(channel);
    await send(t.sql, channel, 2, 'before');
    await client.received(channel, 2);

    // Nothing listens there: every reconnect fails until the proxy points at the database again.
    proxy.retarget(await freePort());
    proxy.cut();
    const readyz = async () => (await fetch(new URL('/readyz', t.url))).json() as Promise<Record<string, unknown>>;
    await waitFor(async () => (await readyz())['ingest'] === 'down', 10_000, 'replication down');
    expect(await readyz()).toMatchObject({ ready: false, ingest: 'down' });
    // The outage is the scenario: ten writes, one every two seconds, while the bridge cannot reach the database.
    for (let i = 1; i <= 10; i++) {
      await t.sql`SELECT pgws.send(${channel}, ${`during${i}`})`;
      await Bun.sleep(2000);
    }
    proxy.retarget(Number(target.port || 5432));
    await expectAll(client, channel, 12);
    await waitFor(async () => (await readyz())['ready'] === true, 20_000, '/readyz ready again');
    expect((await readyz())['ingest']).toBe('up');
  });

  test('a restarted database: what is written after the restart arrives after what came before, no gap', async () => {
    await using db = await startOwnDatabase();
    await installPgws(db.url);
    const channel = uniqueChannel('ingest_restart');
    await using t = await replicatingBridge(channel, db.url);
    using client = await connectMux(t.url);
    await client.subscribe(channel);
    const writer = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await send(writer, channel, 3, 'before');
      await client.received(channel, 3);
      await db.stop();
      await db.start();
      // At once: the bridge may not have reconnected yet, so these are in the table only until it catches up.
      await send(writer, channel, 3, 'after');
      await expectAll(client, channel, 6);
      expect(client.messages(channel).map((frame) => frame.payload)).toEqual([
        'before1',
        'before2',
        'before3',
        'after1',
        'after2',
        'after3',
      ]);
      await within(
        waitFor(() => t.logs.some((line) => line.includes('replication connection restored')), 20_000, 'reconnect'),
        25_000,
        'the replication connection to come back',
      );
    } finally {
      await writer.end({ timeout: 1 });
    }
  });
});
