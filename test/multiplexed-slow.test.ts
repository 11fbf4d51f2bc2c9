import { expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { databaseUrl, metric, uniqueChannel, within } from './harness.ts';
import { spawnServer } from './process.ts';
import { closeCode, rawClient } from './raw.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

/** A multiplexed browser-style client that collects the payloads of `message` frames. */
async function subscriber(url: URL, channel: string) {
  const socket = new WebSocket(`ws://${url.host}/`, 'pgws.v1');
  const payloads: string[] = [];
  const subscribed = Promise.withResolvers<void>();
  let waiter: { count: number; resolve: () => void } | undefined;
  socket.onmessage = (event) => {
    const frame = JSON.parse(String(event.data));
    if (frame.type === 'subscribed') subscribed.resolve();
    if (frame.type === 'message') payloads.push(frame.payload);
    if (waiter !== undefined && payloads.length >= waiter.count) waiter.resolve();
  };
  /** Resolves once `count` payloads have arrived. */
  const received = (count: number) => {
    const done = Promise.withResolvers<void>();
    waiter = { count, resolve: done.resolve };
    if (payloads.length >= count) done.resolve();
    return within(done.promise, 30_000, `${count} messages on the good client`);
  };
  await within(new Promise((resolve) => (socket.onopen = resolve)), 5000, 'the multiplexed socket to open');
  socket.send(JSON.stringify({ type: 'subscribe', channel }));
  await within(subscribed.promise, 5000, 'subscribed');
  return { socket, payloads, received };
}

test('a multiplexed client that stops reading is closed with 1008 while the others get every message', async () => {
  await using server = await spawnServer({ toml: '', env: { DATABASE_URL: databaseUrl() } });
  const channel = uniqueChannel('slowmux');
  const good = await subscriber(server.url, channel);
  using stuck = await rawClient('127.0.0.1', Number(server.url.port), '/', { 'Sec-WebSocket-Protocol': 'pgws.v1' });
  stuck.sendFrame(1, new TextEncoder().encode(JSON.stringify({ type: 'subscribe', channel })));
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  const count = 4000;
  for (let start = 1; start <= count; start += 100) {
    await sql`SELECT pg_notify(${channel}, lpad(i::text, 7900, '0')) FROM generate_series(${start}::int, ${start + 99}::int) i`;
    await good.received(start + 99);
  }
  await sql.end();
  expect(good.payloads.map(Number)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  const frames = await stuck.readAll();
  expect(closeCode(frames)).toBe(1008);
  expect(frames.filter((frame) => frame.opcode === 1).length).toBeLessThan(count / 2);
  expect(await metric(server.url, 'pgws_closes_total', { reason: 'slow_consumer' })).toBe(1);
  good.socket.close();
});
