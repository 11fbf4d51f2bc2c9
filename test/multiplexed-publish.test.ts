/**
 * Acceptance tests of `pgws.v1` publish over real sockets: what is published travels through
 * PostgreSQL to every subscriber (the publisher included), and what is refused, with which code.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { connect } from './client.ts';
import { metric, startBridge, type TestBridge, uniqueChannel } from './harness.ts';
import { connectMux } from './mux.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const [orders, notes, closed] = [uniqueChannel('pub_orders'), uniqueChannel('pub_notes'), uniqueChannel('pub_closed')];
const CHANNELS = `
[channels."${orders}"]
publish = true
[channels."${orders}".schema]
type = "object"
required = ["id"]
properties = { id = { type = "integer" }, note = { type = "string" }, total = { type = "number" }, customer = { type = "object", properties = { id = { type = "integer" } } } }
[channels."${notes}"]
publish = true
[channels."${closed}"]
publish = false
`;

let t: TestBridge;
beforeAll(async () => {
  t = await startBridge(CHANNELS);
});
afterAll(() => t.stop());

const publish = (channel: string, payload: unknown, id: string | number = 'p') => ({
  type: 'publish',
  id,
  channel,
  payload,
});

describe('publish', () => {
  test('a valid publish is answered published and reaches subscribers on other sockets, plain ones, and the publisher', async () => {
    using publisher = await connectMux(t.url);
    using subscriber = await connectMux(t.url);
    using plain = await connect(t.wsUrl(orders));
    await publisher.subscribe(orders);
    const { seq } = await subscriber.subscribe(orders);
    const answer = await publisher.request(publish(orders, { id: 1, note: 'hi' }, 'p1'));
    expect(answer).toEqual({ type: 'published', id: 'p1', channel: orders });
    const message = { type: 'message', channel: orders, seq: (seq ?? 0) + 1, payload: { id: 1, note: 'hi' } };
    expect(await subscriber.next('message')).toEqual(message);
    expect(await publisher.next('message')).toEqual(message);
    expect(await plain.next()).toBe('{"id":1,"note":"hi"}');
  });

  test('a publish that fails the schema is invalid_payload with its issues as dot paths, and nothing is sent', async () => {
    using publisher = await connectMux(t.url);
    await publisher.subscribe(orders);
    const answer = await publisher.request(publish(orders, { id: 2, customer: { id: 'seven' } }, 'bad'));
    expect(answer).toMatchObject({ type: 'error', id: 'bad', channel: orders, code: 'invalid_payload' });
    expect(answer.issues?.map((issue) => issue.path)).toEqual(['customer.id']);
    expect(typeof answer.issues?.[0]?.message).toBe('string');
    await publisher.request(publish(orders, { id: 3 }));
    expect(await publisher.next('message')).toMatchObject({ payload: { id: 3 } });
  });

  test('a publish is judged on its payload alone: an integer id past 2^53 does not make a valid payload invalid', async () => {
    using client = await connectMux(t.url);
    // A payload number of 2^53 or more makes the bridge look for inexact literals; the id's is not the payload's.
    client.sendText(`{"type":"publish","id":9007199254740993,"channel":"${orders}","payload":{"id":1,"total":1e20}}`);
    const answer = await client.next((f) => f.type === 'published' || f.type === 'error');
    expect(answer).toMatchObject({ type: 'published', channel: orders });
  });

  test('a raw channel with publish = true delivers a string payload verbatim', async () => {
    using client = await connectMux(t.url);
    using plain = await connect(t.wsUrl(notes));
    await client.subscribe(notes);
    expect(await client.request(publish(notes, '  {"not":"parsed"}  '))).toMatchObject({ type: 'published' });
    expect(await client.next('message')).toMatchObject({ channel: notes, payload: '  {"not":"parsed"}  ' });
    expect(await plain.next()).toBe('  {"not":"parsed"}  ');
  });

  test.each<[string, unknown]>([
    ['a number', 5],
    ['an object', { text: 'hi' }],
    ['an array', ['hi']],
    ['null', null],
    ['a boolean', true],
  ])('a raw channel refuses %s as payload with invalid_payload', async (_, payload) => {
    using client = await connectMux(t.url);
    expect(await client.request(publish(notes, payload, 'raw'))).toMatchObject({
      type: 'error',
      id: 'raw',
      code: 'invalid_payload',
    });
  });

  test.each([
    ['a declared channel with publish = false', closed],
    ['an undeclared channel', uniqueChannel('pub_undeclared')],
  ])('a publish to %s is forbidden', async (_, channel) => {
    using client = await connectMux(t.url);
    expect(await client.request(publish(channel, 'x', 'f'))).toMatchObject({
      type: 'error',
      id: 'f',
      channel,
      code: 'forbidden',
    });
  });

  test('publishes a payload of 7999 bytes and refuses one of 8000 bytes, counted in UTF-8, with payload_too_large', async () => {
    using client = await connectMux(t.url);
    await client.subscribe(notes);
    const fits = `${'é'.repeat(3999)}x`;
    expect(await client.request(publish(notes, fits))).toMatchObject({ type: 'published' });
    for (const payload of ['x'.repeat(8000), 'é'.repeat(4000)]) {
      expect(await client.request(publish(notes, payload, 'big'))).toMatchObject({ code: 'payload_too_large' });
    }
    const note = 'n'.repeat(8000);
    expect(await client.request(publish(orders, { id: 1, note }, 'big'))).toMatchObject({ code: 'payload_too_large' });
    await client.request(publish(notes, 'after'));
    expect((await client.received(notes, 2)).map((m) => m.payload)).toEqual([fits, 'after']);
  });

  test('payloads that look like SQL or need escaping are delivered verbatim', async () => {
    const payloads = [
      "'); DROP TABLE x; --",
      '$1',
      '$1::text, $2',
      `it's "quoted" ''twice''`,
      "back\\slash \\x00 \\n E'\\n'",
      'unicode ✓ 日本語 🚀 é',
      'tab\there\nnewline\r\n',
      '%s %d %%',
      "'; SELECT pg_notify('other', 'x'); --",
    ];
    using client = await connectMux(t.url);
    using plain = await connect(t.wsUrl(notes));
    await client.subscribe(notes);
    await client.subscribe(orders);
    for (const [i, payload] of payloads.entries()) {
      expect(await client.request(publish(notes, payload))).toMatchObject({ type: 'published' });
      expect(await client.request(publish(orders, { id: i, note: payload }))).toMatchObject({ type: 'published' });
    }
    expect((await client.received(notes, payloads.length)).map((m) => m.payload)).toEqual(payloads);
    expect((await client.received(orders, payloads.length)).map((m) => m.payload)).toEqual(
      payloads.map((note, id) => ({ id, note })),
    );
    expect(await plain.received(payloads.length)).toEqual(payloads);
  });
});

describe('publish limits', () => {
  test('the publish past publish_rate is rate_limited and never delivered', async () => {
    await using r = await startBridge(CHANNELS, { server: 'publish_rate = 5' });
    using publisher = await connectMux(r.url);
    using other = await connectMux(r.url);
    await publisher.subscribe(notes);
    for (let i = 1; i <= 6; i++) publisher.send(publish(notes, `burst ${i}`, i));
    const answers = await Promise.all([1, 2, 3, 4, 5, 6].map((id) => publisher.answer(id)));
    expect(answers.map((a) => (a.type === 'published' ? 'published' : a.code))).toEqual([
      ...Array(5).fill('published'),
      'rate_limited',
    ]);
    // Another socket has its own allowance; its message comes after whatever the burst sent.
    await other.request(publish(notes, 'after'));
    await publisher.until((f) => f.some((m) => m.payload === 'after'), 5000, 'the message after the burst');
    expect(publisher.messages(notes).map((m) => m.payload)).toEqual(
      [1, 2, 3, 4, 5].map((i) => `burst ${i}`).concat('after'),
    );
    expect(await metric(r.url, 'pgws_publishes_total', { outcome: 'rate_limited' })).toBe(1);
  });

  test('refused publishes count toward publish_rate too', async () => {
    await using r = await startBridge(CHANNELS, { server: 'publish_rate = 5' });
    using publisher = await connectMux(r.url);
    for (let i = 1; i <= 5; i++) publisher.send(publish(closed, 'x', i));
    publisher.send(publish(notes, 'valid', 6));
    const answers = await Promise.all([1, 2, 3, 4, 5, 6].map((id) => publisher.answer(id)));
    expect(answers.map((a) => a.code)).toEqual([...Array(5).fill('forbidden'), 'rate_limited']);
  });

  test('counts publishes by outcome in pgws_publishes_total', async () => {
    await using m = await startBridge(CHANNELS);
    using client = await connectMux(m.url);
    await client.request(publish(notes, 'one'));
    await client.request(publish(orders, { id: 1 }));
    await client.request(publish(orders, { id: 'x' }));
    await client.request(publish(closed, 'x'));
    await client.request(publish(notes, 'x'.repeat(8000)));
    const count = (outcome: string) => metric(m.url, 'pgws_publishes_total', { outcome });
    const outcomes = ['published', 'invalid', 'forbidden', 'too_large', 'rate_limited'];
    expect(await Promise.all(outcomes.map(count))).toEqual([2, 1, 1, 1, 0]);
  });
});
