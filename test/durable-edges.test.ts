/**
 * Durable channels at their edges (docs/PROTOCOL.md "Durable channels"): rows retention took before the bridge
 * read them (the one case that still breaks a stream), schemas and filters on rows and replays, a database
 * without pgws.send, `last` on history channels and streams, and the metrics.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import { MISSING_SEND } from '../src/delivery/durable.ts';
import { databaseUrl, metric, startBridge, uniqueChannel, waitFor, within } from './harness.ts';
import { connectMux, type Frame } from './mux.ts';
import { installPgws, scratchDatabase } from './pgws.ts';
import { startTcpProxy } from './proxy.ts';

setDefaultTimeout(60_000);

beforeAll(() => installPgws());

const durable = (channel: string, extra = '') => `[channels."${channel}"]\ndurable = true\n${extra}\n`;
const seqs = (frames: readonly Frame[]) => frames.map((frame) => frame.seq);
const payloads = (frames: readonly Frame[]) => frames.map((frame) => frame.payload);
const SCHEMA = 'schema = { type = "object", properties = { n = { type = "integer" } }, required = ["n"] }';

async function epochOf(sql: import('postgres').Sql, channel: string): Promise<string> {
  const [row] = await sql`SELECT epoch FROM pgws.heads(ARRAY[${channel}]::text[])`;
  return String(row?.['epoch']);
}

describe('rows retention took before they were read', () => {
  test('subscribers get a gap, plain sockets 1012, and what is left is delivered', async () => {
    const channel = uniqueChannel('dur');
    const target = new URL(databaseUrl());
    await using proxy = startTcpProxy({ target: { host: target.hostname, port: Number(target.port || 5432) } });
    await using t = await startBridge(durable(channel), { databaseUrl: proxy.url(databaseUrl()) });
    using client = await connectMux(t.url);
    const start = await client.subscribe(channel);
    const plain = new WebSocket(t.wsUrl(channel));
    const closed = new Promise<number>((resolve) => (plain.onclose = (event) => resolve(event.code)));
    await within(new Promise((resolve) => (plain.onopen = resolve)), 5000, 'the plain socket to open');
    // Away from the database: nothing it sends now reaches the bridge until the proxy points back.
    proxy.retarget(1);
    proxy.cut();
    for (let n = 1; n <= 5; n++) await t.sql`SELECT pgws.send(${channel}, ${`m${n}`})`;
    await t.sql`DELETE FROM pgws.messages WHERE channel = ${channel} AND seq <= 3`;
    proxy.retarget(Number(target.port || 5432));
    const gap = await client.next('gap', 30_000);
    expect(gap).toEqual({ type: 'gap', channel, epoch: start.epoch ?? '', seq: 3 });
    expect(payloads(await client.received(channel, 2))).toEqual(['m4', 'm5']);
    expect(await within(closed, 10_000, 'the plain socket to close')).toBe(1012);
  });
});

describe('a wake-up that never comes', () => {
  test('a row without a wake-up is still delivered, by the periodic check of the heads', async () => {
    const channel = uniqueChannel('dur');
    // A notify-mode bridge, whatever TEST_INGEST says: in replication mode rows never need a wake-up.
    await using t = await startBridge(durable(channel), { database: 'ingest = "notify"' });
    using client = await connectMux(t.url);
    await client.subscribe(channel);
    // As a replication-mode bridge would: pgws.send stores the row and notifies nobody.
    await t.sql`SELECT pgws.wake(ARRAY[${channel}]::text[], false)`;
    await t.sql`SELECT pgws.send(${channel}, 'unannounced')`;
    const [got] = await client.received(channel, 1, 15_000);
    expect(got).toMatchObject({ seq: 1, payload: 'unannounced' });
    expect(t.logs.some((line) => line.includes('without a wake-up'))).toBe(true);
  });
});

describe('schemas and filters', () => {
  test('an invalid row is dropped and its seq skipped, live and in a replay from the table', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel, SCHEMA));
    using client = await connectMux(t.url);
    const start = await client.subscribe(channel);
    for (const text of ['{"n":1}', 'not json', '{"n":"two"}', '{"n":4}'])
      await t.sql`SELECT pgws.send(${channel}, ${text})`;
    const live = await client.received(channel, 2);
    expect(live.map((frame) => [frame.seq, frame.payload])).toEqual([
      [1, { n: 1 }],
      [4, { n: 4 }],
    ]);
    using later = await connectMux(t.url);
    await later.subscribe(channel, { since: { epoch: start.epoch ?? '', seq: 0 } });
    expect(await later.received(channel, 2)).toEqual(live);
  });

  test('a replay from the table applies the filter', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel, SCHEMA));
    const epoch = await epochOf(t.sql, channel);
    using watcher = await connectMux(t.url);
    await watcher.subscribe(channel);
    await t.sql`SELECT pgws.send(${channel}, json_build_object('n', n)::text) FROM generate_series(1, 1200) n`;
    // Read by the bridge first: the resume then reaches back past its cache of 1000, into the table.
    await watcher.received(channel, 1200, 20_000);
    using client = await connectMux(t.url);
    const answer = await client.request({
      type: 'subscribe',
      channel,
      since: { epoch, seq: 0 },
      filter: { n: { gt: 1195 } },
    });
    expect(answer).toMatchObject({ type: 'subscribed', recovered: true });
    expect(seqs(await client.received(channel, 5))).toEqual([1196, 1197, 1198, 1199, 1200]);
    expect(await metric(t.url, 'pgws_durable_table_replays_total')).toBeGreaterThanOrEqual(1);
  });
});

describe('a database without pgws.send', () => {
  test('the server refuses to start, naming bun run sql', async () => {
    await using db = await scratchDatabase();
    const channel = uniqueChannel('dur');
    const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'pgws-durable-'));
    await Bun.write(join(dir, 'channels.toml'), `[server]\nport = 0\n${durable(channel)}`);
    const child = Bun.spawn(['bun', join(import.meta.dir, '..', 'src', 'main.ts'), '--config', 'channels.toml'], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: db.url, HOST: '127.0.0.1' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [stderr, code] = await within(
      Promise.all([new Response(child.stderr).text(), child.exited]),
      20_000,
      'the server to exit',
    );
    expect(code).not.toBe(0);
    expect(stderr.trim().split('\n')).toEqual([expect.stringContaining(MISSING_SEND)]);
  });

  test('an embedded bridge answers a durable subscribe with unavailable, naming bun run sql', async () => {
    await using db = await scratchDatabase();
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel), { databaseUrl: db.url });
    using client = await connectMux(t.url);
    const answer = await client.request({ type: 'subscribe', channel });
    expect(answer).toMatchObject({ type: 'error', code: 'unavailable' });
    await waitFor(() => t.logs.some((line) => line.includes('bun run sql')), 5000, 'the log line');
    // Installed while the bridge runs: its next connection reads the positions, and subscribes work.
    await installPgws(db.url);
    await db.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'pg-notify-ws' AND query ILIKE 'LISTEN%'`;
    await waitFor(
      async () => (await client.request({ type: 'subscribe', channel }))['type'] === 'subscribed',
      20_000,
      'a subscribe to succeed after the install',
    );
  });
});

describe('last on history channels and streams', () => {
  test('last: K on a history channel replays the K newest held messages, then live ones', async () => {
    const channel = uniqueChannel('hist');
    await using t = await startBridge(`[channels."${channel}"]\nhistory = 10\n`);
    using watcher = await connectMux(t.url);
    await watcher.subscribe(channel);
    for (let n = 1; n <= 6; n++) await t.notify(channel, `m${n}`);
    await watcher.received(channel, 6);
    using client = await connectMux(t.url);
    const answer = await client.request({ type: 'subscribe', channel, last: 4 });
    expect(answer).toMatchObject({ type: 'subscribed', seq: (answer['seq'] as number) ?? 0 });
    await t.notify(channel, 'live');
    expect(payloads(await client.received(channel, 5))).toEqual(['m3', 'm4', 'm5', 'm6', 'live']);
  });

  test('GET /events with last.C starts from the newest messages of a durable channel', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel));
    using watcher = await connectMux(t.url);
    await watcher.subscribe(channel);
    for (let n = 1; n <= 5; n++) await t.sql`SELECT pgws.send(${channel}, ${`m${n}`})`;
    await watcher.received(channel, 5);
    const abort = new AbortController();
    const url = new URL(`/events?channel=${encodeURIComponent(channel)}&last.${encodeURIComponent(channel)}=2`, t.url);
    const response = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: abort.signal });
    const reader = response.body?.getReader();
    let text = '';
    await waitFor(
      async () => {
        const chunk = await reader?.read();
        text += new TextDecoder().decode(chunk?.value);
        return (text.match(/event: message/g) ?? []).length >= 2;
      },
      10_000,
      'two messages on the stream',
    );
    abort.abort();
    const data = [...text.matchAll(/event: message\n(?:id: .*\n)?data: (.*)\n/g)].map((m) => JSON.parse(m[1] ?? '{}'));
    expect(data.map((d) => d.payload)).toEqual(['m4', 'm5']);
    expect(text).toMatch(/event: subscribed\n(?:id: .*\n)?data: .*"seq":3/);
  });
});

describe('metrics', () => {
  test('rows read and rows deleted by retention are counted', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel, 'retain = 2'));
    using client = await connectMux(t.url);
    await client.subscribe(channel);
    for (let n = 1; n <= 5; n++) await t.sql`SELECT pgws.send(${channel}, ${`m${n}`})`;
    await client.received(channel, 5);
    expect(await metric(t.url, 'pgws_durable_rows_read_total')).toBeGreaterThanOrEqual(5);
    await waitFor(async () => (await metric(t.url, 'pgws_durable_deleted_total')) >= 3, 10_000, 'retention');
    const [row] = await t.sql`SELECT array_agg(seq ORDER BY seq) AS kept FROM pgws.messages WHERE channel = ${channel}`;
    expect(row?.['kept']).toEqual(['4', '5']);
  });
});
