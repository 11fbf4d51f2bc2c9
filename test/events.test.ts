/**
 * Acceptance tests of `GET /events` as Server-Sent Events (docs/PROTOCOL.md "Server-Sent Events"), point by
 * point: the response, `subscribed`, `message` and `gap` events, the cursor in `id:` and its resume through
 * `Last-Event-ID` or `?since=`, filters, heartbeats, and the stream's end at shutdown. Refusals, authorization,
 * origins and limits are `events-access.test.ts`; NDJSON is `events-ndjson.test.ts`.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { fakeClock } from './clock.ts';
import { streamEvents } from './events.ts';
import { databaseUrl, metric, startBridge, uniqueChannel, waitFor } from './harness.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const query = (...channels: string[]) => channels.map((channel) => `channel=${encodeURIComponent(channel)}`).join('&');

/** A schema channel and a raw one, both with history, so resumes can replay. */
function channels() {
  const orders = uniqueChannel('orders');
  const chat = uniqueChannel('chat');
  const toml = `[channels."${orders}"]\nhistory = 100\n[channels."${orders}".schema]\ntype = "object"\nrequired = ["id"]\n[channels."${chat}"]\nhistory = 100\n`;
  return { orders, chat, toml };
}

describe('GET /events', () => {
  test('answers 200 text/event-stream and sends event: subscribed for each channel, before its messages', async () => {
    const { orders, chat, toml } = channels();
    await using t = await startBridge(toml);
    using stream = await streamEvents(t.url, query(orders, chat));
    expect(stream.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const first = await stream.next('subscribed');
    const second = await stream.next('subscribed');
    expect([first.data, second.data]).toEqual([
      { channel: orders, epoch: expect.any(String), seq: 0 },
      { channel: chat, epoch: expect.any(String), seq: 0 },
    ]);
    await t.notify(chat, 'hello');
    const message = await stream.next('message');
    expect(stream.events.indexOf(message)).toBeGreaterThan(stream.events.indexOf(second));
  });

  test('sends each notification as event: message with an id and data {channel, seq, payload}: parsed JSON on schema channels, the exact text on raw ones', async () => {
    const { orders, chat, toml } = channels();
    await using t = await startBridge(toml);
    using stream = await streamEvents(t.url, query(orders, chat));
    await stream.until((events) => events.filter((e) => e.event === 'subscribed').length === 2, 5000, 'subscribed');
    await t.notify(orders, '{"id": 7, "total": 12.50}');
    await t.notify(chat, ' {not json} ');
    const [order, text] = [await stream.next('message'), await stream.next('message')];
    expect(order.data).toEqual({ channel: orders, seq: 1, payload: { id: 7, total: 12.5 } });
    expect(text.data).toEqual({ channel: chat, seq: 1, payload: ' {not json} ' });
    expect(order.id).toBeString();
    expect(text.id).not.toBe(order.id);
    // One line of JSON per data field, exactly as the contract writes it.
    expect(stream.text()).toContain(
      `data: {"channel":${JSON.stringify(orders)},"seq":1,"payload":{"id":7,"total":12.5}}\n`,
    );
  });

  test('resumes every channel of a Last-Event-ID cursor: recovered per channel, the missed messages once and in order, then live ones', async () => {
    const { orders, chat, toml } = channels();
    await using t = await startBridge(toml);
    const first = await streamEvents(t.url, query(orders, chat));
    await t.notify(orders, '{"id":1}');
    await t.notify(chat, 'one');
    await first.until((events) => events.filter((e) => e.event === 'message').length === 2, 5000, 'two messages');
    const cursor = first.lastId() ?? '';
    first.close();
    // Missed while away: two on each channel.
    for (const i of [2, 3]) {
      await t.notify(orders, `{"id":${i}}`);
      await t.notify(chat, String(i));
    }
    using again = await streamEvents(t.url, query(orders, chat), { headers: { 'last-event-id': cursor } });
    const subscribed = [await again.next('subscribed'), await again.next('subscribed')].map((e) => e.data);
    expect(subscribed).toEqual([
      { channel: orders, epoch: expect.any(String), seq: 1, recovered: true },
      { channel: chat, epoch: expect.any(String), seq: 1, recovered: true },
    ]);
    await t.notify(orders, '{"id":4}');
    await again.until(
      (events) => events.filter((e) => e.event === 'message').length === 5,
      5000,
      'the replay and a live one',
    );
    expect(again.messages(orders).map((m) => [m['seq'], m['payload']])).toEqual([
      [2, { id: 2 }],
      [3, { id: 3 }],
      [4, { id: 4 }],
    ]);
    expect(again.messages(chat).map((m) => m['payload'])).toEqual(['2', '3']);
  });

  test('resumes from ?since= as from Last-Event-ID, and the header wins when both are sent (EventSource keeps the first URL)', async () => {
    const { chat, toml } = channels();
    await using t = await startBridge(toml);
    const first = await streamEvents(t.url, query(chat));
    const old = first.lastId() ?? (await first.next('subscribed')).id ?? '';
    await t.notify(chat, 'a');
    await first.next('message');
    const newer = first.lastId() ?? '';
    first.close();
    await t.notify(chat, 'b');
    using fromQuery = await streamEvents(t.url, `${query(chat)}&since=${newer}`);
    expect((await fromQuery.next('subscribed')).data).toMatchObject({ seq: 1, recovered: true });
    expect((await fromQuery.next('message')).data).toMatchObject({ seq: 2, payload: 'b' });
    using both = await streamEvents(t.url, `${query(chat)}&since=${old}`, { headers: { 'last-event-id': newer } });
    expect((await both.next('subscribed')).data).toMatchObject({ seq: 1, recovered: true });
  });

  test.each([
    ['text that is no cursor', 'not-a-cursor'],
    ['a cursor of another version', '2.W10.'],
    ['a cursor whose seqs do not match its channels', '1.W1siYSIsImUiXV0.1~2'],
    ['a cursor with a negative seq', '1.W1siYSIsImUiXV0.-1'],
  ])('treats %s as no cursor: 200, and every channel recovered: false', async (_, cursor) => {
    const { orders, chat, toml } = channels();
    await using t = await startBridge(toml);
    using stream = await streamEvents(t.url, query(orders, chat), { headers: { 'last-event-id': cursor } });
    expect((await stream.next('subscribed')).data).toMatchObject({ channel: orders, recovered: false });
    expect((await stream.next('subscribed')).data).toMatchObject({ channel: chat, recovered: false });
  });

  test('subscribes a channel the cursor does not hold afresh: no recovered field, as a subscribe without since', async () => {
    const { orders, chat, toml } = channels();
    await using t = await startBridge(toml);
    const first = await streamEvents(t.url, query(chat));
    const cursor = (await first.next('subscribed')).id ?? '';
    first.close();
    using stream = await streamEvents(t.url, query(chat, orders), { headers: { 'last-event-id': cursor } });
    expect((await stream.next('subscribed')).data).toMatchObject({ channel: chat, recovered: true });
    expect((await stream.next('subscribed')).data).toEqual({ channel: orders, epoch: expect.any(String), seq: 0 });
  });

  test('applies filter.C to its channel only, with seqs that skip what it filtered out', async () => {
    const { orders, chat, toml } = channels();
    await using t = await startBridge(toml);
    const filter = encodeURIComponent(JSON.stringify({ total: { gte: 100 } }));
    using stream = await streamEvents(t.url, `${query(orders, chat)}&filter.${encodeURIComponent(orders)}=${filter}`);
    await stream.until((events) => events.filter((e) => e.event === 'subscribed').length === 2, 5000, 'subscribed');
    await t.notify(orders, '{"id":1,"total":5}');
    await t.notify(orders, '{"id":2,"total":250}');
    await t.notify(chat, 'unfiltered');
    await stream.until((events) => events.filter((e) => e.event === 'message').length === 2, 5000, 'two messages');
    expect(stream.messages(orders)).toEqual([{ channel: orders, seq: 2, payload: { id: 2, total: 250 } }]);
    expect(stream.messages(chat)).toHaveLength(1);
  });

  test('sends event: gap with an id when the LISTEN connection is lost, and the stream goes on in the new epoch', async () => {
    const app = uniqueChannel('app');
    const { chat, toml } = channels();
    await using t = await startBridge(toml, {
      databaseUrl: `${databaseUrl()}?application_name=${app}`,
      database: 'reconnect_min_ms = 20',
    });
    using stream = await streamEvents(t.url, query(chat));
    const subscribed = await stream.next('subscribed');
    await t.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${app}`;
    const gap = await stream.next('gap', 10_000);
    expect(gap.data).toEqual({ channel: chat, epoch: expect.any(String), seq: 0 });
    expect(gap.data['epoch']).not.toBe(subscribed.data['epoch']);
    expect(gap.id).toBeString();
    await waitFor(
      async () => (await fetch(new URL('/readyz', t.url))).status === 200,
      10_000,
      'the bridge to be ready',
    );
    await t.notify(chat, 'after');
    expect((await stream.next('message')).data).toEqual({ channel: chat, seq: 1, payload: 'after' });
  });

  test('writes a comment line whenever 14 s pass with nothing else sent, so no stream is silent for 15 s', async () => {
    const clock = fakeClock();
    const { chat, toml } = channels();
    await using t = await startBridge(toml, { clock });
    using stream = await streamEvents(t.url, query(chat));
    await stream.next('subscribed');
    clock.advance(7000);
    clock.advance(7000);
    await stream.next(':');
    await t.notify(chat, 'busy');
    await stream.next('message');
    // The message was the stream's news for this tick: the next comment comes two ticks after it.
    clock.advance(7000);
    clock.advance(7000);
    await stream.next(':');
    expect(stream.events.filter((e) => e.event === ':')).toHaveLength(2);
  });

  test('ends the stream with a comment naming why when the server shuts down', async () => {
    const { chat, toml } = channels();
    const t = await startBridge(toml);
    const stream = await streamEvents(t.url, query(chat));
    await stream.next('subscribed');
    expect(await metric(t.url, 'pgws_connections', { transport: 'sse' })).toBe(1);
    await t.stop();
    await stream.ended;
    expect(stream.text()).toEndWith(': closed 1001 shutdown: server shutting down\n\n');
  });

  test('a plain GET on a channel path (what curl -N tries first) is still 426, and names the /events URL that streams it', async () => {
    await using t = await startBridge();
    const answer = await fetch(new URL('/chat%20room', t.url));
    expect(answer.status).toBe(426);
    expect(await answer.text()).toContain('GET /events?channel=chat%20room');
  });

  test('counts a stream the client closes under pgws_closes_total{reason="client",transport="sse"}', async () => {
    const { chat, toml } = channels();
    await using t = await startBridge(toml);
    const stream = await streamEvents(t.url, query(chat));
    await stream.next('subscribed');
    stream.close();
    await waitFor(
      async () => (await metric(t.url, 'pgws_closes_total', { reason: 'client', transport: 'sse' })) === 1,
      5000,
      'the close to be counted',
    );
    expect(await metric(t.url, 'pgws_connections', { transport: 'sse' })).toBe(0);
    expect(await metric(t.url, 'pgws_subscriptions', { mode: 'multiplexed' })).toBe(0);
  });
});
