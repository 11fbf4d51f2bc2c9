/**
 * Acceptance tests of `pgws.v1` positions and resume over real sockets: seq numbering, history,
 * `since` in every case the contract names, and what changes an epoch.
 *
 * A NOTIFY committed is not yet a NOTIFY the bridge has read, so before a test resumes it waits for a
 * watcher socket to receive what was sent: only then is the head where the test says it is.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { metric, startBridge, uniqueChannel, waitFor } from './harness.ts';
import { connectMux, type Frame, type MuxClient, type Position } from './mux.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/** A bridge with one history channel on which `count` messages `m1`… were sent and read by a watcher. */
async function historyChannel(history: number, count: number) {
  const channel = uniqueChannel('hist');
  const t = await startBridge(`[channels."${channel}"]\nhistory = ${history}\n`);
  const watcher = await connectMux(t.url);
  const start = await watcher.subscribe(channel);
  for (let i = 1; i <= count; i++) await t.notify(channel, `m${i}`);
  await watcher.received(channel, count);
  const base = start.seq ?? Number.NaN;
  return {
    t,
    channel,
    epoch: start.epoch ?? '',
    base,
    head: base + count,
    watcher,
    async [Symbol.asyncDispose]() {
      watcher.socket.close();
      await t.stop();
    },
  };
}

/**
 * The messages on `channel` after the subscribe answer, up to and including a live one that `notify`
 * sends now and that arrives as `live`.
 */
async function replayThenLive(client: MuxClient, channel: string, notify: () => Promise<void>, live: unknown = 'live') {
  await notify();
  await client.until(
    (frames) => frames.some((f) => f.type === 'message' && f.channel === channel && Bun.deepEquals(f.payload, live)),
    5000,
    'the live message',
  );
  return client.messages(channel);
}

describe('seq', () => {
  test('numbers 3,000 notifications sent in three transactions consecutively from the subscribed seq', async () => {
    await using t = await startBridge();
    using client = await connectMux(t.url);
    const channel = uniqueChannel('seq');
    const { seq } = await client.subscribe(channel);
    // PG: identical payloads in one transaction are folded into one, so every payload is distinct.
    for (const start of [1, 1001, 2001]) {
      await t.sql`SELECT pg_notify(${channel}, 'n' || i) FROM generate_series(${start}::int, ${start + 999}::int) i`;
    }
    const got = await client.received(channel, 3000, 20_000);
    expect(got.map((m) => m.seq)).toEqual(range((seq ?? 0) + 1, (seq ?? 0) + 3000));
    expect(got.map((m) => m.payload)).toEqual(range(1, 3000).map((i) => `n${i}`));
  });

  test('an invalid payload on a schema channel takes no seq and is not kept in history', async () => {
    const channel = uniqueChannel('schema');
    await using t = await startBridge(
      `[channels."${channel}"]\nhistory = 10\n[channels."${channel}".schema]\ntype = "object"\nrequired = ["id"]\nproperties = { id = { type = "integer" } }\n`,
    );
    using client = await connectMux(t.url);
    const { epoch, seq } = await client.subscribe(channel);
    for (const payload of ['{"id":1}', 'not json', '{"id":"two"}', '{"id":2}', '{}', '{"id":3}'])
      await t.notify(channel, payload);
    const base = seq ?? 0;
    const want = [1, 2, 3].map((id) => ({ type: 'message', channel, seq: base + id, payload: { id } }));
    expect(await client.received(channel, 3)).toEqual(want);
    using again = await connectMux(t.url);
    expect(await again.subscribe(channel, { since: { epoch: epoch ?? '', seq: base } })).toMatchObject({
      recovered: true,
    });
    expect(
      await replayThenLive(again, channel, () => t.notify(channel, '{"id":4,"p":"live"}'), { id: 4, p: 'live' }),
    ).toEqual([...want, { type: 'message', channel, seq: base + 4, payload: { id: 4, p: 'live' } }]);
  });
});

describe('resume', () => {
  test('after a client drop, replays exactly the missed messages, then live ones', async () => {
    await using h = await historyChannel(100, 2);
    using dropped = await connectMux(h.t.url);
    await dropped.subscribe(h.channel, { since: { epoch: h.epoch, seq: h.base } });
    const before = await dropped.received(h.channel, 2);
    dropped.socket.close();
    await dropped.closed;
    for (const payload of ['m3', 'm4', 'm5', 'm6']) await h.t.notify(h.channel, payload);
    await h.watcher.received(h.channel, 6);
    using back = await connectMux(h.t.url);
    const last = before.at(-1)?.seq ?? -1;
    const answer = await back.subscribe(h.channel, { since: { epoch: h.epoch, seq: last } });
    expect(answer).toMatchObject({
      type: 'subscribed',
      channel: h.channel,
      epoch: h.epoch,
      seq: last,
      recovered: true,
    });
    const after = await replayThenLive(back, h.channel, () => h.t.notify(h.channel, 'live'));
    expect(after.map((m) => [m.seq, m.payload])).toEqual([
      ...range(3, 6).map((i) => [h.base + i, `m${i}`]),
      [h.base + 7, 'live'],
    ]);
  });

  test('across the replay/live boundary while notifications keep coming: no seq missing, none twice', async () => {
    await using h = await historyChannel(20_000, 0);
    using first = await connectMux(h.t.url);
    await first.subscribe(h.channel, { since: { epoch: h.epoch, seq: h.base } });
    let written = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) await h.t.notify(h.channel, String(++written));
    })();
    await first.received(h.channel, 100);
    first.socket.close();
    await first.closed;
    const before = first.messages(h.channel);
    const last = before.at(-1)?.seq ?? -1;
    // Some messages are missed while away: the bridge has read 50 past the last one the client had.
    await h.watcher.until((f) => f.some((m) => (m.seq ?? 0) >= last + 50), 10_000, '50 messages missed while away');
    using second = await connectMux(h.t.url);
    const answer = await second.subscribe(h.channel, { since: { epoch: h.epoch, seq: last } });
    const writtenAtResume = written;
    expect(answer).toMatchObject({ recovered: true, seq: last });
    // Live messages well past the resume, then stop the writer and wait for its last one.
    await second.until((f) => f.some((m) => m.payload === String(writtenAtResume + 200)), 20_000, '200 live messages');
    writing = false;
    await writer;
    await second.until((f) => f.some((m) => m.payload === String(written)), 20_000, 'the last message');
    const union = [...before, ...second.messages(h.channel)];
    expect(union.map((m) => m.seq)).toEqual(range(h.base + 1, h.base + written));
    expect(union.map((m) => m.payload)).toEqual(range(1, written).map(String));
    // The resume really fell between replay and live: messages were missed, and more came after it.
    expect(writtenAtResume).toBeGreaterThan(last - h.base);
    console.log(
      `resume under load: ${before.length} before the drop, resumed after ${last - h.base} of ${writtenAtResume} sent, ${written} in all`,
    );
  });

  test('a replay far larger than the socket buffer arrives whole and in order while live messages keep coming', async () => {
    await using h = await historyChannel(5000, 0);
    // 3,000 payloads of 7,900 bytes (24 MB): far more than the kernel's socket buffers and the part of a
    // replay written before a drain. Sent in batches the watcher reads before the next, so it never falls behind.
    for (let start = 1; start <= 3000; start += 100) {
      await h.t
        .sql`SELECT pg_notify(${h.channel}, lpad(i::text, 7900, '.')) FROM generate_series(${start}::int, ${start + 99}::int) i`;
      await h.watcher.received(h.channel, start + 99, 20_000);
    }
    using client = await connectMux(h.t.url);
    const answer = await client.subscribe(h.channel, { since: { epoch: h.epoch, seq: h.base } });
    expect(answer).toMatchObject({ recovered: true, seq: h.base });
    for (let i = 3001; i <= 3300; i++) await h.t.notify(h.channel, String(i).padStart(7900, '.'));
    const got = await client.received(h.channel, 3300, 30_000);
    expect(got.map((m) => m.seq)).toEqual(range(h.base + 1, h.base + 3300));
    expect(got.map((m) => Number(String(m.payload).replaceAll('.', '')))).toEqual(range(1, 3300));
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
  });

  test.each<[string, (h: { epoch: string; head: number }) => Position, number[] | false]>([
    ['at the head is recovered with nothing replayed', (h) => ({ epoch: h.epoch, seq: h.head }), []],
    [
      'exactly as far behind as the history holds is recovered',
      (h) => ({ epoch: h.epoch, seq: h.head - 3 }),
      [3, 4, 5],
    ],
    ['one further behind than the history holds is not recovered', (h) => ({ epoch: h.epoch, seq: h.head - 4 }), false],
    ['from seq 0 with more sent than held is not recovered', (h) => ({ epoch: h.epoch, seq: 0 }), false],
    ['in another epoch is not recovered', (h) => ({ epoch: `${h.epoch}x`, seq: h.head }), false],
    ['at seq 0 of another epoch is not recovered', () => ({ epoch: 'no such epoch', seq: 0 }), false],
    ['one ahead of the head is not recovered', (h) => ({ epoch: h.epoch, seq: h.head + 1 }), false],
    ['far ahead of the head is not recovered', (h) => ({ epoch: h.epoch, seq: h.head + 1_000_000 }), false],
  ])('a resume %s', async (_, since, replayed) => {
    // History 3, five messages m1…m5 sent: m3…m5 are held.
    await using h = await historyChannel(3, 5);
    using client = await connectMux(h.t.url);
    const position = since(h);
    const answer = await client.subscribe(h.channel, { since: position });
    const recovered = replayed !== false;
    const seq = recovered ? position.seq : h.head;
    expect(answer).toMatchObject({ type: 'subscribed', channel: h.channel, epoch: h.epoch, seq, recovered });
    const after = await replayThenLive(client, h.channel, () => h.t.notify(h.channel, 'live'));
    const want = [...(replayed || []).map((i) => [h.base + i, `m${i}`]), [h.head + 1, 'live']];
    expect(after.map((m) => [m.seq, m.payload])).toEqual(want);
  });

  test('a history channel records with no subscriber at all, and a resume from seq 0 of its epoch replays it', async () => {
    const channel = uniqueChannel('unwatched');
    await using t = await startBridge(`[channels."${channel}"]\nhistory = 10\n`);
    for (const payload of ['a', 'b', 'c']) await t.notify(channel, payload);
    // Nobody is subscribed: the head is read with a subscribe that cannot recover, until it shows all three.
    using probe = await connectMux(t.url);
    let head: Frame = { type: 'none' };
    await waitFor(
      async () => {
        head = await probe.subscribe(channel, { since: { epoch: 'unknown', seq: 0 } });
        await probe.request({ type: 'unsubscribe', channel });
        return head.seq === 3;
      },
      5000,
      'the head of the unwatched channel to reach 3',
    );
    expect(head).toMatchObject({ recovered: false, seq: 3 });
    using client = await connectMux(t.url);
    const answer = await client.subscribe(channel, { since: { epoch: head.epoch ?? '', seq: 0 } });
    expect(answer).toMatchObject({ epoch: head.epoch, seq: 0, recovered: true });
    const after = await replayThenLive(client, channel, () => t.notify(channel, 'live'));
    expect(after.map((m) => [m.seq, m.payload])).toEqual([
      [1, 'a'],
      [2, 'b'],
      [3, 'c'],
      [4, 'live'],
    ]);
  });
});

describe('metrics', () => {
  test('report the history held per channel and count replays by whether they recovered', async () => {
    await using h = await historyChannel(3, 5);
    const labels = { channel: h.channel };
    expect(await metric(h.t.url, 'pgws_history_messages', labels)).toBe(3);
    expect(await metric(h.t.url, 'pgws_history_bytes', labels)).toBeGreaterThan(0);
    using client = await connectMux(h.t.url);
    await client.subscribe(h.channel, { since: { epoch: h.epoch, seq: h.head - 1 } });
    await client.request({ type: 'unsubscribe', channel: h.channel });
    await client.subscribe(h.channel, { since: { epoch: h.epoch, seq: 0 } });
    const replays = (recovered: string) => metric(h.t.url, 'pgws_replays_total', { recovered });
    expect([await replays('true'), await replays('false')]).toEqual([1, 1]);
  });
});

describe('epochs', () => {
  test('a resume against another server instance (a restart) is not recovered and names a new epoch', async () => {
    const channel = uniqueChannel('restart');
    const toml = `[channels."${channel}"]\nhistory = 10\n`;
    let old: Frame;
    {
      await using t = await startBridge(toml);
      using client = await connectMux(t.url);
      old = await client.subscribe(channel);
    }
    await using t = await startBridge(toml);
    using client = await connectMux(t.url);
    const answer = await client.subscribe(channel, { since: { epoch: old.epoch ?? '', seq: old.seq ?? 0 } });
    expect(answer).toMatchObject({ recovered: false, seq: 0 });
    expect(answer.epoch).not.toBe(old.epoch);
  });

  test('a channel without history that lost its last subscriber does not recover what was sent meanwhile', async () => {
    await using t = await startBridge();
    const [channel, marker] = [uniqueChannel('rejoin'), uniqueChannel('marker')];
    using client = await connectMux(t.url);
    using watcher = await connectMux(t.url);
    await watcher.subscribe(marker);
    const first = await client.subscribe(channel);
    await t.notify(channel, 'seen');
    const [seen] = await client.received(channel, 1);
    await client.request({ type: 'unsubscribe', channel });
    await t.notify(channel, 'missed');
    // One LISTEN connection delivers in commit order: once the marker is read, so is "missed" (if still listened).
    await t.notify(marker, 'read');
    await watcher.received(marker, 1);
    const answer = await client.subscribe(channel, { since: { epoch: first.epoch ?? '', seq: seen?.seq ?? -1 } });
    // Either reading is allowed: UNLISTENed (a new epoch at 0) or still listened (head 2, "missed" not held).
    expect(answer.recovered).toBe(false);
    if (answer.epoch === first.epoch) expect(answer.seq).toBe((seen?.seq ?? 0) + 1);
    else expect(answer.seq).toBe(0);
    await t.notify(channel, 'next');
    expect(await client.next((f) => f.type === 'message' && f.payload === 'next')).toMatchObject({
      seq: (answer.seq ?? 0) + 1,
    });
  });
});
