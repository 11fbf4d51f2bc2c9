/**
 * The client (src/client/client.ts) over streams: `transport: "sse"`, and `transport: "auto"` falling back to
 * `GET /events` and `POST /channels/C/messages` when a proxy refuses WebSocket upgrades (test/proxy.ts with
 * `refuseUpgrades`). The API and the resume are the WebSocket client's: the same recorder sees the same events.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { type ClientTransport, type ConnectionState, createClient } from '../src/client/client.ts';
import { fakeClock } from './clock.ts';
import { metric, startBridge, type TestBridge, uniqueChannel, waitFor } from './harness.ts';
import { startTcpProxy } from './proxy.ts';
import { opened, recorder } from './sdk.ts';
import { authToml, hs256, secretEnv } from './tokens.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const proxyOf = (t: TestBridge, refuseUpgrades = false) =>
  startTcpProxy({ target: { host: '127.0.0.1', port: Number(t.url.port) }, refuseUpgrades });

function clientAt(
  port: number,
  transport: ClientTransport | 'auto',
  extra: Partial<Parameters<typeof createClient>[0]> = {},
) {
  const states: [ConnectionState, ClientTransport][] = [];
  const client = createClient({
    url: `ws://127.0.0.1:${port}/`,
    transport,
    reconnect: { minMs: 20, maxMs: 200 },
    onState: (state, carrier) => states.push([state, carrier]),
    ...extra,
  });
  return { client, states };
}

const streamsOpen = (t: TestBridge, count: number) =>
  waitFor(
    async () => (await metric(t.url, 'pgws_connections', { transport: 'sse' })) === count,
    10_000,
    `${count} streams`,
  );

describe('the client over streams', () => {
  test('transport "auto" falls back to /events and POST through a proxy that refuses upgrades, and says so in onState', async () => {
    const [orders, chat] = [uniqueChannel('orders'), uniqueChannel('chat')];
    await using t = await startBridge(
      `[channels."${orders}"]\nhistory = 10\npublish = true\n[channels."${chat}"]\nhistory = 10\n`,
    );
    await using proxy = await proxyOf(t, true);
    const { client, states } = clientAt(proxy.port, 'auto');
    const [seenOrders, seenChat] = [recorder(), recorder()];
    client.subscribe(orders, seenOrders.handlers);
    client.subscribe(chat, seenChat.handlers);
    await opened(client);
    expect(client.transport).toBe('sse');
    expect(states).toEqual([['open', 'sse']]);
    await streamsOpen(t, 1);
    // The publisher gets its own message back, as over a WebSocket; the publish itself is a POST.
    await client.publish(orders, 'from the client');
    await t.notify(chat, 'from psql');
    await seenOrders.until(1);
    await seenChat.until(1);
    expect(seenOrders.events).toEqual(['1:"from the client"']);
    expect(seenChat.events).toEqual(['1:"from psql"']);
    expect(await metric(t.url, 'pgws_publishes_total', { outcome: 'published', transport: 'http' })).toBe(1);
    expect(await metric(t.url, 'pgws_connections', { transport: 'ws' })).toBe(0);
    await client.close();
  });

  test('transport "auto" stays on a WebSocket where the upgrade works', async () => {
    await using t = await startBridge();
    const { client, states } = clientAt(Number(t.url.port), 'auto');
    await opened(client);
    expect(states).toEqual([['open', 'ws']]);
    await client.close();
  });

  test('resumes after a network cut with exactly the missed messages, no gap, as over a WebSocket', async () => {
    const channel = uniqueChannel();
    await using t = await startBridge(`[channels."${channel}"]\nhistory = 100\n`);
    await using proxy = await proxyOf(t);
    const { client, states } = clientAt(proxy.port, 'sse');
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await opened(client);
    await streamsOpen(t, 1);
    await t.notify(channel, 'one');
    await seen.until(1);
    proxy.cut();
    await waitFor(() => client.state === 'connecting', 5000, 'the client to notice the cut');
    await t.notify(channel, 'two');
    await t.notify(channel, 'three');
    await opened(client);
    await t.notify(channel, 'four');
    await seen.until(4);
    expect(seen.events).toEqual(['1:"one"', '2:"two"', '3:"three"', '4:"four"']);
    expect(seen.gaps).toEqual([]);
    expect(states.map(([state]) => state)).toEqual(['open', 'connecting', 'open']);
    await client.close();
  });

  test('a subscription added or removed later reopens the stream, and the others lose and repeat nothing', async () => {
    const [first, second] = [uniqueChannel('first'), uniqueChannel('second')];
    await using t = await startBridge(`[channels."${first}"]\nhistory = 100\n[channels."${second}"]\nhistory = 100\n`);
    const { client } = clientAt(Number(t.url.port), 'sse');
    const [seenFirst, seenSecond] = [recorder(), recorder()];
    client.subscribe(first, seenFirst.handlers);
    await opened(client);
    await streamsOpen(t, 1);
    await t.notify(first, 'a');
    await seenFirst.until(1);
    const later = client.subscribe(second, seenSecond.handlers);
    await t.notify(first, 'b');
    await t.notify(second, 'x');
    await seenSecond.until(1);
    await seenFirst.until(2);
    later.unsubscribe();
    await t.notify(first, 'c');
    await seenFirst.until(3);
    expect(seenFirst.events).toEqual(['1:"a"', '2:"b"', '3:"c"']);
    expect(seenFirst.gaps).toEqual([]);
    expect(seenSecond.events).toEqual(['1:"x"']);
    await streamsOpen(t, 1);
    await client.close();
  });

  test('a channel the server refuses ends that subscription through its onError; the others go on', async () => {
    const [declared, undeclared] = [uniqueChannel('declared'), uniqueChannel('undeclared')];
    await using t = await startBridge(`[channels."${declared}"]\n`, { server: 'unknown_channels = "reject"' });
    const { client } = clientAt(Number(t.url.port), 'sse');
    const [kept, refused] = [recorder(), recorder()];
    client.subscribe(declared, kept.handlers);
    client.subscribe(undeclared, refused.handlers);
    await refused.until(1);
    expect(refused.errors[0]?.code).toBe('unknown_channel');
    await opened(client);
    await streamsOpen(t, 1);
    await t.notify(declared, 'still here');
    await kept.until(1);
    await client.close();
  });

  test('refreshes its token before exp by opening the stream again with the new one: no drop, nothing lost', async () => {
    const channel = uniqueChannel();
    // The bridge's expiry runs on a fake clock; the client's refresh timer is its own (real) one.
    const clock = fakeClock();
    await using t = await startBridge(`${authToml()}[channels."${channel}"]\nhistory = 10\n`, { ...secretEnv, clock });
    const firstExpiry = Math.floor(Date.now() / 1000) + 1;
    let calls = 0;
    const grant = { channels: { [channel]: 'r' } };
    const { client, states } = clientAt(Number(t.url.port), 'sse', {
      // A second left on the first token: the client refreshes within it; the next one lasts.
      token: () =>
        ++calls === 1 ? hs256({ ...grant, exp: firstExpiry }) : hs256({ ...grant, exp: clock.seconds() + 600 }),
    });
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await opened(client);
    await waitFor(() => calls === 2, 5000, 'the refresh');
    // The old stream is closed by the client once the new one is asked for: one stream again, the second.
    await waitFor(
      async () => (await metric(t.url, 'pgws_closes_total', { reason: 'client', transport: 'sse' })) === 1,
      5000,
      'the first stream to be replaced',
    );
    await streamsOpen(t, 1);
    // Past the first token's exp plus the 5 s tolerance: a stream still on it would be ended now.
    clock.advanceTo((firstExpiry + 5) * 1000 + 1);
    await t.notify(channel, 'still here');
    await seen.until(1);
    expect(seen.events).toEqual(['1:"still here"']);
    expect(states.map(([state]) => state)).toEqual(['open']);
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'token_expired', transport: 'sse' })).toBe(0);
    await client.close();
  });

  test('sends its token as Authorization: Bearer, on the stream and on each publish; a publish it may not make rejects with forbidden', async () => {
    const channel = uniqueChannel();
    await using t = await startBridge(`${authToml()}[channels."${channel}"]\npublish = true\n`, secretEnv);
    const token = await hs256({ channels: { [channel]: 'rw', other: 'r' } });
    const { client } = clientAt(Number(t.url.port), 'sse', { token: async () => token });
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await opened(client);
    await client.publish(channel, 'signed');
    await seen.until(1);
    await expect(client.publish('other', 'no')).rejects.toMatchObject({ code: 'forbidden' });
    await client.close();
  });
});
