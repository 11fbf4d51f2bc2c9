import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { connect, upgradeStatus } from './client.ts';
import { metric, startBridge, type TestBridge, uniqueChannel, waitFor } from './harness.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

describe('raw channels', () => {
  let t: TestBridge;
  beforeAll(async () => {
    t = await startBridge();
  });
  afterAll(() => t.stop());

  test('delivers a notification to every client on the channel, and only that channel', async () => {
    const channel = uniqueChannel();
    const other = uniqueChannel();
    using a = await connect(t.wsUrl(channel));
    using b = await connect(t.wsUrl(channel));
    using c = await connect(t.wsUrl(other));
    await t.notify(channel, 'hello');
    await t.notify(other, 'for c');
    expect(await a.next()).toBe('hello');
    expect(await b.next()).toBe('hello');
    expect(await c.next()).toBe('for c');
  });

  test('a client is subscribed when its open event fires', async () => {
    const channel = uniqueChannel();
    using client = await connect(t.wsUrl(channel));
    await t.notify(channel, 'right after open');
    expect(await client.next()).toBe('right after open');
  });

  test.each([
    ['mixed case', 'Orders_Mixed'],
    ['double quotes', 'a "quoted" name'],
    ['a semicolon and SQL', 'x"; DROP TABLE users; --'],
    ['spaces', 'order events'],
    ['non-ASCII', 'ünïcødé 🚀 заказы'],
    ['a percent sign and slash', '50%/off'],
    ['exactly 63 bytes', 'é'.repeat(31) + 'x'],
  ])('takes a channel name with %s literally', async (_, name) => {
    const channel = `${name}`;
    using client = await connect(t.wsUrl(channel));
    await t.notify(channel, `to ${channel}`);
    expect(await client.next()).toBe(`to ${channel}`);
  });

  test('channel names are case-sensitive, exactly as pg_notify', async () => {
    const lower = uniqueChannel('case');
    const upper = lower.toUpperCase();
    using a = await connect(t.wsUrl(lower));
    using b = await connect(t.wsUrl(upper));
    await t.notify(upper, 'upper');
    await t.notify(lower, 'lower');
    expect(await a.next()).toBe('lower');
    expect(await b.next()).toBe('upper');
  });

  test.each([
    ['64 bytes', 'é'.repeat(32), 400],
    ['an empty name', '', 400],
    ['two path segments', 'a/b', 400],
  ])('refuses an upgrade for a channel name of %s with HTTP 400', async (_, name, status) => {
    const path = name === 'a/b' ? 'a/b' : encodeURIComponent(name);
    const refused = await upgradeStatus(`ws://${t.url.host}/${path}`);
    expect(refused.status).toBe(status);
  });

  test('refuses malformed percent-encoding with HTTP 400', async () => {
    expect((await upgradeStatus(`ws://${t.url.host}/%E0%A4%A`)).status).toBe(400);
  });

  test('delivers the largest payload PostgreSQL allows and multi-byte payloads byte-exact', async () => {
    const channel = uniqueChannel();
    using client = await connect(t.wsUrl(channel));
    // PG: the payload must be shorter than 8000 bytes (NOTIFY_PAYLOAD_MAX_LENGTH); 8000 is refused.
    expect(t.notify(channel, 'x'.repeat(8000))).rejects.toThrow('payload string too long');
    const big = `${'x'.repeat(7998)}!`;
    const multibyte = '€'.repeat(2666); // 7998 bytes of UTF-8
    const emoji = '{"msg":"héllo 🌍"}\n\ttabs and "quotes"';
    for (const payload of [big, multibyte, emoji]) await t.notify(channel, payload);
    expect(await client.received(3)).toEqual([big, multibyte, emoji]);
    expect(new TextEncoder().encode(client.messages[0]).length).toBe(7999);
  });

  test('delivers notifications in commit order, including many in one transaction', async () => {
    const channel = uniqueChannel();
    using client = await connect(t.wsUrl(channel));
    await t.sql.begin(async (tx) => {
      for (let i = 0; i < 200; i++) await tx`SELECT pg_notify(${channel}, ${String(i)})`;
    });
    const got = await client.received(200);
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
  });

  test('LISTENs on the first subscriber and UNLISTENs when the last one leaves', async () => {
    const channel = uniqueChannel('unlisten');
    const before = await metric(t.url, 'pgws_listen_channels');
    const a = await connect(t.wsUrl(channel));
    const b = await connect(t.wsUrl(channel));
    expect(await metric(t.url, 'pgws_listen_channels')).toBe(before + 1);
    a.socket.close();
    await a.closed;
    expect(await metric(t.url, 'pgws_listen_channels')).toBe(before + 1);
    b.socket.close();
    await b.closed;
    await waitFor(async () => (await metric(t.url, 'pgws_listen_channels')) === before, 5000, 'the UNLISTEN');
  });

  test('holds two thousand clients on one channel and delivers one notification to all', async () => {
    const channel = uniqueChannel('many');
    const clients = [];
    for (let batch = 0; batch < 20; batch++) {
      clients.push(
        ...(await Promise.all(Array.from({ length: 100 }, () => connect(t.wsUrl(channel), { ms: 15_000 })))),
      );
    }
    await t.notify(channel, 'to all');
    const got = await Promise.all(clients.map((c) => c.next(15_000)));
    expect(got.filter((m) => m === 'to all').length).toBe(2000);
    for (const c of clients) c.socket.close();
  });

  test('never runs text a client sends: the socket is closed with 1003 and nothing reaches SQL', async () => {
    const channel = uniqueChannel();
    const victim = uniqueChannel('victim');
    await t.sql.unsafe(`CREATE TABLE IF NOT EXISTS "${victim}" (id int)`);
    using client = await connect(t.wsUrl(channel));
    client.socket.send(`DROP TABLE "${victim}"; SELECT pg_notify('${channel}', 'injected')`);
    expect((await client.closed).code).toBe(1003);
    const [row] = await t.sql`SELECT to_regclass(${`"${victim}"`}) IS NOT NULL AS exists`;
    expect(row?.['exists']).toBe(true);
    expect(client.messages).toEqual([]);
    await t.sql.unsafe(`DROP TABLE "${victim}"`);
  });

  test('closes a client that sends a binary frame with 1003', async () => {
    using client = await connect(t.wsUrl(uniqueChannel()));
    client.socket.send(new Uint8Array([1, 2, 3]));
    expect((await client.closed).code).toBe(1003);
  });

  test('closes a client that sends a frame over max_message_bytes with 1009', async () => {
    using client = await connect(t.wsUrl(uniqueChannel()));
    client.socket.send('x'.repeat(65_537));
    expect((await client.closed).code).toBe(1009);
  });
});

describe('HTTP endpoints', () => {
  let t: TestBridge;
  beforeAll(async () => {
    t = await startBridge();
  });
  afterAll(() => t.stop());

  test('GET /healthz answers 200 with JSON while the LISTEN connection is up', async () => {
    const response = await fetch(new URL('/healthz', t.url));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok', database: 'up', pid: process.pid });
  });

  test('GET / serves the console page', async () => {
    const response = await fetch(t.url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    expect(await response.text()).toContain('/channels');
  });

  test('a plain GET on a channel path answers 426 Upgrade Required', async () => {
    const response = await fetch(new URL('/orders', t.url));
    expect(response.status).toBe(426);
  });

  test('a WebSocket on a path that is also an endpoint name is still a channel', async () => {
    using client = await connect(t.wsUrl('healthz'));
    await t.notify('healthz', 'channel, not endpoint');
    expect(await client.next()).toBe('channel, not endpoint');
  });
});
