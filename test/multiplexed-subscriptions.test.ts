/**
 * Acceptance tests of `pgws.v1` subscriptions over real sockets: many channels on one socket, the
 * answers to subscribe and unsubscribe, the per-socket and per-server limits, and how a multiplexed
 * socket counts toward connections and closes at shutdown.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { connect } from './client.ts';
import { metric, startBridge, uniqueChannel, waitFor, within } from './harness.ts';
import { connectMux, handshake, SUBPROTOCOL } from './mux.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

describe('subscriptions on one socket', () => {
  test('delivers notifications of many channels on one socket, each message naming its channel', async () => {
    await using t = await startBridge();
    using client = await connectMux(t.url);
    const channels = Array.from({ length: 5 }, () => uniqueChannel('many'));
    for (const channel of channels) {
      expect(await client.subscribe(channel)).toEqual({
        type: 'subscribed',
        id: expect.anything(),
        channel,
        epoch: expect.any(String),
        seq: 0,
      });
    }
    for (const round of [1, 2]) for (const channel of channels) await t.notify(channel, `${channel} #${round}`);
    for (const channel of channels) {
      const got = await client.received(channel, 2);
      expect(got).toEqual([1, 2].map((seq) => ({ type: 'message', channel, seq, payload: `${channel} #${seq}` })));
    }
  });

  test('a raw channel carries the exact NOTIFY text as a JSON string, a schema channel the parsed value', async () => {
    const schema = uniqueChannel('parsed');
    await using t = await startBridge(`[channels."${schema}".schema]\ntype = "object"\n`);
    using client = await connectMux(t.url);
    const raw = uniqueChannel('raw');
    await client.subscribe(raw);
    await client.subscribe(schema);
    const texts = ['{"a": 1}', ' 5 ', 'null', '"quoted"', 'line\u2028sep é🚀', ''];
    for (const text of texts) await t.notify(raw, text);
    await t.notify(schema, '{ "a" : [1, 2.50, "x"] }');
    expect((await client.received(raw, texts.length)).map((m) => m.payload)).toEqual(texts);
    expect((await client.received(schema, 1))[0]?.payload).toEqual({ a: [1, 2.5, 'x'] });
  });

  test('a subscribe without since answers without a recovered field', async () => {
    await using t = await startBridge();
    using client = await connectMux(t.url);
    expect(await client.subscribe(uniqueChannel())).not.toHaveProperty('recovered');
  });

  test('unsubscribe stops exactly that channel and answers unsubscribed with reason client', async () => {
    await using t = await startBridge();
    using client = await connectMux(t.url);
    const [left, kept] = [uniqueChannel('left'), uniqueChannel('kept')];
    await client.subscribe(left);
    await client.subscribe(kept);
    const answer = await client.request({ type: 'unsubscribe', id: 'u', channel: left });
    expect(answer).toEqual({ type: 'unsubscribed', id: 'u', channel: left, reason: 'client' });
    await t.notify(left, 'not for you');
    await t.notify(kept, 'after');
    expect(await client.next('message')).toMatchObject({ channel: kept, payload: 'after' });
    expect(client.messages(left)).toEqual([]);
  });

  test('a second subscribe to the same channel is already_subscribed, and messages still arrive once', async () => {
    await using t = await startBridge();
    using client = await connectMux(t.url);
    const channel = uniqueChannel();
    await client.subscribe(channel);
    const again = await client.request({ type: 'subscribe', id: 2, channel });
    expect(again).toMatchObject({ type: 'error', id: 2, channel, code: 'already_subscribed' });
    await t.notify(channel, 'one');
    await t.notify(channel, 'two');
    await client.received(channel, 2);
    await t.notify(channel, 'three');
    expect((await client.received(channel, 3)).map((m) => m.payload)).toEqual(['one', 'two', 'three']);
    expect(client.messages(channel)).toHaveLength(3);
  });

  test('a subscribe cancelled by an unsubscribe before its LISTEN is done is still answered, before the unsubscribe', async () => {
    await using t = await startBridge();
    using client = await connectMux(t.url);
    const channel = uniqueChannel('cancelled');
    // Sent together: the unsubscribe arrives while the LISTEN of a new channel is on its way to PostgreSQL.
    client.send({ type: 'subscribe', id: 'sub', channel });
    client.send({ type: 'unsubscribe', id: 'unsub', channel });
    const [subscribed, unsubscribed] = await Promise.all([client.answer('sub'), client.answer('unsub')]);
    // Either reading: subscribed then unsubscribed, or the subscribe refused and the unsubscribe not_subscribed.
    if (subscribed.type === 'subscribed')
      expect(unsubscribed).toMatchObject({ type: 'unsubscribed', reason: 'client' });
    else expect([subscribed.type, unsubscribed.code]).toEqual(['error', 'not_subscribed']);
    expect(client.frames.indexOf(subscribed)).toBeLessThan(client.frames.indexOf(unsubscribed));
  });

  test('unsubscribing from a channel the socket is not subscribed to is not_subscribed', async () => {
    await using t = await startBridge();
    using client = await connectMux(t.url);
    const channel = uniqueChannel();
    const answer = await client.request({ type: 'unsubscribe', id: 'stray', channel });
    expect(answer).toMatchObject({ type: 'error', id: 'stray', channel, code: 'not_subscribed' });
    await client.subscribe(channel);
    await client.request({ type: 'unsubscribe', channel });
    expect(await client.request({ type: 'unsubscribe', channel })).toMatchObject({ code: 'not_subscribed' });
  });

  test('refuses a subscription past max_subscriptions with too_many_subscriptions, and admits one after an unsubscribe', async () => {
    await using t = await startBridge('', { server: 'max_subscriptions = 3' });
    using client = await connectMux(t.url);
    const channels = Array.from({ length: 4 }, () => uniqueChannel('cap'));
    for (const channel of channels.slice(0, 3)) await client.subscribe(channel);
    const refused = await client.request({ type: 'subscribe', id: 'fourth', channel: channels[3] });
    expect(refused).toMatchObject({ type: 'error', id: 'fourth', code: 'too_many_subscriptions' });
    // The limit is per socket: another socket has its own.
    using other = await connectMux(t.url);
    await other.subscribe(channels[3] ?? '');
    await client.request({ type: 'unsubscribe', channel: channels[0] });
    await client.subscribe(channels[3] ?? '');
  });

  test('refuses an undeclared channel with unknown_channel when unknown_channels = "reject"', async () => {
    const declared = uniqueChannel('declared');
    await using t = await startBridge(`[channels."${declared}"]\n`, { server: 'unknown_channels = "reject"' });
    using client = await connectMux(t.url);
    const channel = uniqueChannel('undeclared');
    const refused = await client.request({ type: 'subscribe', id: 1, channel });
    expect(refused).toMatchObject({ type: 'error', id: 1, channel, code: 'unknown_channel' });
    await client.subscribe(declared);
  });

  test('refuses a new channel past max_channels with unavailable and keeps the socket, but not a listened one', async () => {
    await using t = await startBridge('', { server: 'max_channels = 2' });
    using client = await connectMux(t.url);
    const [a, b, c] = [uniqueChannel(), uniqueChannel(), uniqueChannel()];
    await client.subscribe(a);
    await client.subscribe(b);
    expect(await client.request({ type: 'subscribe', id: 'c', channel: c })).toMatchObject({
      type: 'error',
      id: 'c',
      channel: c,
      code: 'unavailable',
    });
    using other = await connectMux(t.url);
    await other.subscribe(a);
    await t.notify(a, 'still served');
    expect(await client.next('message')).toMatchObject({ channel: a, payload: 'still served' });
  });
});

describe('connections', () => {
  test('a multiplexed socket counts once toward max_connections whatever its subscriptions', async () => {
    await using t = await startBridge('', { server: 'max_connections = 2' });
    using mux = await connectMux(t.url);
    for (let i = 0; i < 5; i++) await mux.subscribe(uniqueChannel('conn'));
    using plain = await connect(t.wsUrl(uniqueChannel()));
    expect(await metric(t.url, 'pgws_connections')).toBe(2);
    expect((await handshake(t.url, '/', SUBPROTOCOL)).status).toBe(503);
    expect(plain.socket.readyState).toBe(WebSocket.OPEN);
  });

  test('counts subscriptions by mode in pgws_subscriptions', async () => {
    await using t = await startBridge();
    const subscriptions = (mode: string) => metric(t.url, 'pgws_subscriptions', { mode });
    using one = await connectMux(t.url);
    const two = await connectMux(t.url);
    const channels = [uniqueChannel(), uniqueChannel(), uniqueChannel()];
    for (const channel of channels) await one.subscribe(channel);
    await two.subscribe(channels[0] ?? '');
    using _plain = await connect(t.wsUrl(channels[0] ?? ''));
    expect([await subscriptions('multiplexed'), await subscriptions('plain')]).toEqual([4, 1]);
    await one.request({ type: 'unsubscribe', channel: channels[1] });
    expect(await subscriptions('multiplexed')).toBe(3);
    two.socket.close();
    await two.closed;
    await waitFor(async () => (await subscriptions('multiplexed')) === 2, 5000, 'the closed socket to be counted out');
  });

  test('shutdown closes multiplexed sockets with 1001', async () => {
    await using t = await startBridge();
    using client = await connectMux(t.url);
    await client.subscribe(uniqueChannel());
    await t.stop();
    expect((await within(client.closed, 5000, 'the 1001 close')).code).toBe(1001);
  });
});
