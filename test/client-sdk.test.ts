/**
 * The typed client (src/client/client.ts) in Bun against a real bridge and PostgreSQL. Network cuts and
 * server restarts go through the TCP proxy in test/proxy.ts, so the client sees what it would on a real
 * network: its socket dropped, and a server that may or may not remember it.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { SignJWT } from 'jose';
import { type ConnectionState, createClient, PgwsError } from '../src/client/client.ts';
import { fakeClock } from './clock.ts';
import { databaseUrl, metric, startBridge, type TestBridge, uniqueChannel, waitFor, within } from './harness.ts';
import { startTcpProxy, type TcpProxy } from './proxy.ts';
import { opened, recorder } from './sdk.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

/** A client through a proxy in front of `t`; closed by the caller. */
function through(proxy: TcpProxy, extra: Partial<Parameters<typeof createClient>[0]> = {}) {
  const states: ConnectionState[] = [];
  const client = createClient({
    url: `ws://127.0.0.1:${proxy.port}/`,
    reconnect: { minMs: 20, maxMs: 200 },
    onState: (state) => states.push(state),
    ...extra,
  });
  return { client, states };
}

async function withProxy(t: TestBridge) {
  return startTcpProxy({ target: { host: '127.0.0.1', port: Number(t.url.port) } });
}

describe('the client: subscribe and resume', () => {
  test('delivers messages with their seq, and resumes after a network cut with exactly the missed ones, no gap', async () => {
    const channel = uniqueChannel();
    await using t = await startBridge(`[channels."${channel}"]\nhistory = 100\n`);
    await using proxy = await withProxy(t);
    const { client, states } = through(proxy);
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await seen.answered(1);
    await t.notify(channel, 'one');
    await t.notify(channel, 'two');
    await seen.until(2);
    proxy.cut();
    await waitFor(() => client.state === 'connecting', 5000, 'the client to notice the cut');
    await t.notify(channel, 'three');
    await t.notify(channel, 'four');
    await opened(client);
    await t.notify(channel, 'five');
    await seen.until(5);
    expect(seen.events).toEqual(['1:"one"', '2:"two"', '3:"three"', '4:"four"', '5:"five"']);
    expect(seen.gaps).toEqual([]);
    // onSubscribed: the position the server answered with, first from nothing, then resumed after "two" (recovered).
    const epoch = seen.subscribed[0]?.epoch ?? '';
    expect(seen.subscribed).toEqual([
      { epoch: expect.any(String), seq: 0 },
      { epoch, seq: 2, recovered: true },
    ]);
    expect(states).toEqual(['open', 'connecting', 'open']);
    await client.close();
  });

  test('a server restart calls onGap once (not recovered), then messages flow again', async () => {
    const channel = uniqueChannel();
    const first = await startBridge(`[channels."${channel}"]\nhistory = 100\n`);
    await using proxy = await withProxy(first);
    const { client } = through(proxy);
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await seen.answered(1);
    await first.notify(channel, 'before');
    await seen.until(1);
    await using second = await startBridge(`[channels."${channel}"]\nhistory = 100\n`);
    proxy.retarget(Number(second.url.port));
    await first.stop();
    await seen.until(2);
    expect(seen.events[1]).toBe('gap:not_recovered');
    await seen.answered(2);
    await second.notify(channel, 'after');
    await seen.until(3);
    expect(seen.events).toEqual(['1:"before"', 'gap:not_recovered', '1:"after"']);
    await client.close();
  });

  test('a database reconnect calls onGap with reason gap, and the subscription goes on', async () => {
    const app = uniqueChannel('app');
    const channel = uniqueChannel();
    await using t = await startBridge('', {
      databaseUrl: `${databaseUrl()}?application_name=${app}`,
      database: 'reconnect_min_ms = 20',
    });
    await using proxy = await withProxy(t);
    const { client } = through(proxy);
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await seen.answered(1);
    await t.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${app}`;
    await seen.until(1);
    expect(seen.gaps).toMatchObject([{ channel, seq: 0, reason: 'gap' }]);
    await waitFor(async () => (await fetch(new URL('/readyz', t.url))).status === 200, 10_000, 'the bridge to be back');
    await t.notify(channel, 'after the gap');
    await seen.until(2);
    expect(seen.events[1]).toBe('1:"after the gap"');
    await client.close();
  });

  test('unsubscribing while reconnecting leaves that channel out of the resubscribe', async () => {
    const [gone, kept] = [uniqueChannel(), uniqueChannel()];
    await using t = await startBridge();
    await using proxy = await withProxy(t);
    const { client } = through(proxy);
    const goneSeen = recorder();
    const keptSeen = recorder();
    const subscription = client.subscribe(gone, goneSeen.handlers);
    client.subscribe(kept, keptSeen.handlers);
    await opened(client);
    proxy.cut();
    await waitFor(() => client.state === 'connecting', 5000, 'the cut');
    subscription.unsubscribe();
    await opened(client);
    await waitFor(
      async () => (await metric(t.url, 'pgws_subscriptions', { mode: 'multiplexed' })) === 1,
      5000,
      'one subscription',
    );
    await t.notify(gone, 'must not arrive');
    await t.notify(kept, 'arrives');
    await keptSeen.until(1);
    expect(goneSeen.events).toEqual([]);
    await client.close();
  });

  test('subscribing twice to one channel throws; a refused subscribe ends it through onError with the code', async () => {
    const declared = uniqueChannel();
    await using t = await startBridge(`[channels."${declared}"]\n`, { server: 'unknown_channels = "reject"' });
    const client = createClient({ url: `ws://${t.url.host}/` });
    client.subscribe(declared, recorder().handlers);
    expect(() => client.subscribe(declared, recorder().handlers)).toThrow(PgwsError);
    const refused = recorder();
    client.subscribe(uniqueChannel(), refused.handlers);
    await refused.until(1);
    expect(refused.errors[0]?.code).toBe('unknown_channel');
    await client.close();
  });
});

describe('the client: publish and close', () => {
  const toml = (channel: string) =>
    `[channels."${channel}"]\npublish = true\n[channels."${channel}".schema]\ntype = "object"\nrequired = ["n"]\n` +
    `[channels."${channel}".schema.properties.n]\ntype = "integer"\n`;

  test('publish resolves on published (and the message arrives), rejects with the code and issues', async () => {
    const channel = uniqueChannel();
    await using t = await startBridge(toml(channel));
    const client = createClient<Record<string, { n: unknown }>>({ url: `ws://${t.url.host}/` });
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    // Made before the socket is open: it waits for it.
    await client.publish(channel, { n: 1 });
    await seen.until(1);
    expect(seen.events).toEqual(['1:{"n":1}']);
    const error = await client.publish(channel, { n: 'one' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PgwsError);
    expect(error).toMatchObject({ code: 'invalid_payload', issues: [{ path: 'n' }] });
    expect(await client.publish(uniqueChannel(), { n: 1 }).catch((e: PgwsError) => e.code)).toBe('forbidden');
    await client.close();
    expect(await client.publish(channel, { n: 2 }).catch((e: PgwsError) => e.code)).toBe('closed');
  });

  test('a publish to a channel whose subscribe is unanswered waits for the answer, so the publisher gets its own message', async () => {
    // A scripted socket: the race (pg_notify committing before the LISTEN is in place) is timing on a real
    // server, so the rule that prevents it is checked on the frames the client sends.
    const sent: Array<Record<string, unknown>> = [];
    let server: FakeSocket | undefined;
    class FakeSocket extends EventTarget {
      readyState = 1;
      onmessage: ((event: { data: string }) => void) | null = null;
      onclose: ((event: { code: number; reason: string }) => void) | null = null;
      constructor() {
        super();
        server = this;
      }
      send(text: string) {
        sent.push(JSON.parse(text));
      }
      close() {}
      deliver(frame: object) {
        this.onmessage?.({ data: JSON.stringify(frame) });
      }
    }
    const client = createClient({ url: 'ws://127.0.0.1:1/', WebSocket: FakeSocket as never });
    client.subscribe('orders', recorder().handlers);
    const published = client.publish('orders', { n: 1 });
    await waitFor(() => server !== undefined, 1000, 'the socket');
    server?.deliver({ type: 'ready', subject: null, expires: null });
    expect(sent.map((frame) => frame['type'])).toEqual(['subscribe']);
    server?.deliver({ type: 'subscribed', channel: 'orders', epoch: 'e', seq: 0 });
    expect(sent.map((frame) => frame['type'])).toEqual(['subscribe', 'publish']);
    server?.deliver({ type: 'published', id: sent[1]?.['id'], channel: 'orders' });
    await published;
    void client.close();
  });

  test('a publish in flight when the connection drops rejects with unavailable and is not re-sent', async () => {
    const channel = uniqueChannel();
    await using t = await startBridge(toml(channel));
    await using proxy = await withProxy(t);
    const { client } = through(proxy);
    await opened(client);
    const pending = client.publish(channel, { n: 7 });
    proxy.cut();
    expect(await pending.catch((e: PgwsError) => e.code)).toBe('unavailable');
    await opened(client);
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await client.publish(channel, { n: 8 });
    await seen.until(1);
    expect(seen.events).toEqual([expect.stringMatching(/:\{"n":8\}$/)]);
    await client.close();
  });

  test('close during backoff cancels the reconnect and resolves', async () => {
    await using t = await startBridge();
    await using proxy = await withProxy(t);
    const { client, states } = through(proxy, { reconnect: { minMs: 5000, maxMs: 5000 } });
    await opened(client);
    proxy.cut();
    await waitFor(() => client.state === 'connecting', 5000, 'the cut');
    await within(client.close(), 1000, 'close to resolve at once');
    expect(states.at(-1)).toBe('closed');
    expect(proxy.open).toBe(0);
  });
});

describe('the client: tokens', () => {
  const SECRET = 's'.repeat(40);
  const sign = (exp: number) =>
    new SignJWT({ channels: { '*': 'rw' } })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(SECRET));

  test('refreshes the token in-band before it expires, without a disconnect', async () => {
    const channel = uniqueChannel();
    // The bridge's expiry runs on a fake clock; the client's refresh timer is its own (real) one.
    const clock = fakeClock();
    await using t = await startBridge('[auth]\nsecret_env = "TEST_JWT_SECRET"\n', {
      env: { TEST_JWT_SECRET: SECRET },
      clock,
    });
    const firstExpiry = Math.floor(Date.now() / 1000) + 1;
    let calls = 0;
    const states: ConnectionState[] = [];
    // The real WebSocket, watched: the server's second `ready` is its answer to the refresh.
    const readies: unknown[] = [];
    const refreshed = Promise.withResolvers<void>();
    class Watched extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        this.addEventListener('message', (event) => {
          const frame = JSON.parse(String(event.data));
          if (frame.type === 'ready' && readies.push(frame) === 2) refreshed.resolve();
        });
      }
    }
    const client = createClient({
      url: `ws://${t.url.host}/`,
      WebSocket: Watched,
      // A second left on the first token: the client refreshes within it; the next one lasts.
      token: () => (++calls === 1 ? sign(firstExpiry) : sign(clock.seconds() + 600)),
      onState: (state) => states.push(state),
    });
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await opened(client);
    await within(refreshed.promise, 5000, 'the ready answering the refresh');
    expect(readies).toEqual([
      { type: 'ready', subject: 'alice', expires: firstExpiry },
      { type: 'ready', subject: 'alice', expires: clock.seconds() + 600 },
    ]);
    // Past the first token's exp plus the 5 s tolerance: an unrefreshed socket would be closed with 4401 now.
    clock.advanceTo((firstExpiry + 5) * 1000 + 1);
    await t.notify(channel, 'still here');
    await seen.until(1);
    expect(calls).toBe(2);
    expect(states).toEqual(['open']);
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'token_expired' })).toBe(0);
    await client.close();
  });
});
