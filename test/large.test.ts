/**
 * Payloads beyond NOTIFY's 8000 bytes, end to end: pgws.notify (the real install script) stores them,
 * a real bridge fetches each once and delivers it like any other, in order, in both modes.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { MARKER } from '../src/channels/reference.ts';
import { EVENTS, quoteIdent, triggerSql } from '../src/db/trigger.ts';
import { connect } from './client.ts';
import { metric, startBridge, type TestBridge, uniqueChannel, waitFor } from './harness.ts';
import { connectMux } from './mux.ts';
import { installPgws, scratchDatabase } from './pgws.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const MiB = 1024 * 1024;
const WIDE = uniqueChannel('wide');
const HISTORY = uniqueChannel('history');
const PUBLISH = uniqueChannel('publish');
const TOML = `
[channels.${WIDE}]
history = 10
[channels.${WIDE}.schema]
type = "object"
required = ["table", "schema", "type", "row"]
[channels.${HISTORY}]
history = 50
[channels.${PUBLISH}]
publish = true
`;

describe('large payloads through pgws.notify', () => {
  let t: TestBridge;
  const invalid = (channel: string, reason: string) =>
    metric(t.url, 'pgws_notifications_invalid_total', { channel, reason });
  const large = (channel: string, payload: string) => t.sql`SELECT pgws.notify(${channel}, ${payload})`;

  beforeAll(async () => {
    await installPgws();
    t = await startBridge(TOML);
  });
  afterAll(() => t.stop());

  test('a 1 MiB row change from a generated trigger reaches plain and multiplexed clients on a schema channel, fetched once', async () => {
    const table = `Wide "Rows" ${uniqueChannel('T')}`;
    await t.sql.unsafe(`CREATE TABLE ${quoteIdent(table)} (id int PRIMARY KEY, body text)`);
    try {
      await t.sql.unsafe(triggerSql({ schema: 'public', table, channel: WIDE, events: EVENTS })).simple();
      using plain = await connect(t.wsUrl(WIDE));
      using mux = await connectMux(t.url);
      const { seq } = await mux.subscribe(WIDE);
      const fetchesBefore = await metric(t.url, 'pgws_payload_fetches_total');
      // json_build_object writes `"key" : value`; the body fills the payload to exactly 1 MiB.
      const frame = `{"table" : ${JSON.stringify(table)}, "schema" : "public", "type" : "INSERT", "row" : {"id":1,"body":""}}`;
      const body = 'x'.repeat(MiB - frame.length);
      await t.sql.unsafe(`INSERT INTO ${quoteIdent(table)} VALUES (1, $1)`, [body]);
      const expected = { table, schema: 'public', type: 'INSERT', row: { id: 1, body } };
      expect(JSON.parse(await plain.next(10_000))).toEqual(expected);
      const [message] = await mux.received(WIDE, 1);
      expect(message).toEqual({ type: 'message', channel: WIDE, seq: Number(seq) + 1, payload: expected });
      const [stored] = await t.sql`SELECT octet_length(payload) AS bytes FROM pgws.payloads WHERE channel = ${WIDE}`;
      expect(Number(stored?.['bytes'])).toBe(MiB);
      expect((await metric(t.url, 'pgws_payload_fetches_total')) - fetchesBefore).toBe(1);
    } finally {
      await t.sql.unsafe(`DROP TABLE ${quoteIdent(table)}`);
    }
  });

  test('200 small and large notifications in one transaction arrive in commit order in both modes', async () => {
    const channel = uniqueChannel('mixed');
    using plain = await connect(t.wsUrl(channel));
    using mux = await connectMux(t.url);
    await mux.subscribe(channel);
    const payloads = Array.from({ length: 200 }, (_, i) =>
      i % 4 === 0 ? `${i}:${'L'.repeat(9000 + i * 37)}` : `${i}:small`,
    );
    await t.sql.begin(async (tx) => {
      for (const payload of payloads) {
        // Small ones straight with pg_notify: each must wait for the large one before it.
        if (payload.length > 8000) await tx`SELECT pgws.notify(${channel}, ${payload})`;
        else await tx`SELECT pg_notify(${channel}, ${payload})`;
      }
    });
    expect(await plain.received(200)).toEqual(payloads);
    const messages = await mux.received(channel, 200);
    expect(messages.map((m) => m.payload)).toEqual(payloads);
    expect(messages.map((m) => m.seq)).toEqual(payloads.map((_, i) => i + 1));
  });

  test('large payloads are kept in history and replayed to a multiplexed client that resumes', async () => {
    using watcher = await connect(t.wsUrl(HISTORY));
    const before = await (async () => {
      using first = await connectMux(t.url);
      // Awaited here: the socket closes when this block ends.
      return await first.subscribe(HISTORY);
    })();
    const missed = [`a${'1'.repeat(20_000)}`, 'b small', `c${'3'.repeat(30_000)}`];
    await large(HISTORY, missed[0] as string);
    await t.notify(HISTORY, missed[1] as string);
    await large(HISTORY, missed[2] as string);
    // Delivered to the plain watcher means recorded in history (one synchronous step).
    expect(await watcher.received(3)).toEqual(missed);
    using back = await connectMux(t.url);
    const since = { epoch: String(before.epoch), seq: Number(before.seq) };
    const resumed = await back.subscribe(HISTORY, { since });
    expect(resumed).toMatchObject({ recovered: true, seq: since.seq });
    const replayed = await back.received(HISTORY, 3);
    expect(replayed.map((m) => m.payload)).toEqual(missed);
    expect(replayed.map((m) => m.seq)).toEqual([1, 2, 3].map((n) => since.seq + n));
  });

  test.each([
    ['malformed (no UUID after the marker)', 'reference_malformed'],
    ['to a row that does not exist', 'reference_missing'],
    ['forged: a row of another channel, re-sent with pg_notify', 'reference_forged'],
    ['to a payload over max_payload_bytes', 'too_large'],
  ])('drops a reference %s, counts it, logs it without its content and keeps serving', async (_, reason) => {
    const channel = uniqueChannel('bad');
    using client = await connect(t.wsUrl(channel));
    const secret = `SECRET-${reason}`;
    if (reason === 'reference_malformed') await t.notify(channel, `${MARKER}${secret}`);
    if (reason === 'reference_missing') await t.notify(channel, `${MARKER}${crypto.randomUUID()}`);
    if (reason === 'reference_forged') {
      const other = uniqueChannel('other');
      await large(other, `${secret}${'x'.repeat(9000)}`);
      const [row] = await t.sql`SELECT id::text FROM pgws.payloads WHERE channel = ${other}`;
      await t.notify(channel, `${MARKER}${row?.['id']}`);
    }
    if (reason === 'too_large') await large(channel, `${secret}${'x'.repeat(MiB)}`);
    await t.notify(channel, 'after');
    expect(await client.next()).toBe('after');
    expect(await invalid(channel, reason)).toBe(1);
    const logged = t.logs.filter((line) => line.includes(channel) && line.includes(reason));
    expect(logged.length).toBe(1);
    expect(logged.join('\n')).not.toContain('SECRET');
  });

  test('passes a payload that starts with the control character but not the marker through untouched', async () => {
    const channel = uniqueChannel('rs');
    using client = await connect(t.wsUrl(channel));
    await t.notify(channel, '\u001Epgws');
    await t.notify(channel, '\u001E{"not":"a reference"}');
    expect(await client.received(2)).toEqual(['\u001Epgws', '\u001E{"not":"a reference"}']);
  });

  test('a small payload that starts with the marker, sent with pgws.notify, arrives as it was sent', async () => {
    const channel = uniqueChannel('marker');
    using client = await connect(t.wsUrl(channel));
    await large(channel, `${MARKER}not a reference`);
    expect(await client.next()).toBe(`${MARKER}not a reference`);
  });

  test('a multiplexed publish over 7999 bytes goes through pgws.notify and comes back to the publisher', async () => {
    using mux = await connectMux(t.url);
    await mux.subscribe(PUBLISH);
    const payload = 'p'.repeat(20_000);
    expect(await mux.request({ type: 'publish', id: 1, channel: PUBLISH, payload })).toEqual({
      type: 'published',
      id: 1,
      channel: PUBLISH,
    });
    expect((await mux.received(PUBLISH, 1))[0]?.payload).toBe(payload);
  });
});

describe('large payloads on a database of their own', () => {
  test('stored payloads are deleted after large_payload_ttl; a reference to one is then dropped as missing', async () => {
    await using db = await scratchDatabase();
    await installPgws(db.url);
    await using t = await startBridge('', { databaseUrl: db.url, database: 'large_payload_ttl = 1' });
    const channel = uniqueChannel('ttl');
    const stored = Date.now();
    await db.sql`SELECT pgws.notify(${channel}, ${'x'.repeat(10_000)})`;
    const [row] = await db.sql`SELECT id::text FROM pgws.payloads`;
    const id = String(row?.['id']);
    const exists = async () => (await db.sql`SELECT 1 FROM pgws.payloads WHERE id = ${id}::uuid`).length > 0;
    await waitFor(async () => !(await exists()), 10_000, 'the sweep to delete the stored payload');
    expect(Date.now() - stored).toBeGreaterThanOrEqual(1000);
    expect(await metric(t.url, 'pgws_payloads_expired_total')).toBeGreaterThanOrEqual(1);
    using client = await connect(t.wsUrl(channel));
    await db.sql`SELECT pg_notify(${channel}, ${`${MARKER}${id}`})`;
    await db.sql`SELECT pg_notify(${channel}, 'after')`;
    expect(await client.next()).toBe('after');
    expect(await metric(t.url, 'pgws_notifications_invalid_total', { channel, reason: 'reference_missing' })).toBe(1);
  });

  test('a multiplexed publish over 7999 bytes is payload_too_large without pgws and above max_payload_bytes', async () => {
    await using db = await scratchDatabase();
    const channel = uniqueChannel('pub');
    await using t = await startBridge(`[channels.${channel}]\npublish = true\n`, {
      databaseUrl: db.url,
      server: 'max_payload_bytes = 30000',
    });
    using mux = await connectMux(t.url);
    await mux.subscribe(channel);
    const publish = async (id: number, bytes: number) => {
      const answer = await mux.request({ type: 'publish', id, channel, payload: 'q'.repeat(bytes) });
      return [answer.type === 'error' ? answer.code : answer.type, answer.message];
    };
    expect(await publish(1, 7999)).toEqual(['published', undefined]);
    const [code, message] = await publish(2, 20_000);
    expect(code).toBe('payload_too_large');
    expect(message).toContain('pgws.notify');
    expect(await publish(3, 40_000)).toEqual([
      'payload_too_large',
      'the payload is 40000 bytes; this server takes at most 30000 (max_payload_bytes)',
    ]);
    await installPgws(db.url);
    expect(await publish(4, 20_000)).toEqual(['published', undefined]);
    const delivered = await mux.received(channel, 2);
    expect(delivered.map((m) => String(m.payload).length)).toEqual([7999, 20_000]);
  });
});
