import { expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { databaseUrl, metric, uniqueChannel } from './harness.ts';
import { connectMux } from './mux.ts';
import { spawnServer } from './process.ts';
import { closeCode, rawClient } from './raw.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

test('a multiplexed client that stops reading is closed with 1008 while the others get every message', async () => {
  await using server = await spawnServer({ toml: '', env: { DATABASE_URL: databaseUrl() } });
  const channel = uniqueChannel('slowmux');
  using good = await connectMux(server.url);
  await good.subscribe(channel);
  using stuck = await rawClient('127.0.0.1', Number(server.url.port), '/', { 'Sec-WebSocket-Protocol': 'pgws.v1' });
  stuck.sendFrame(1, new TextEncoder().encode(JSON.stringify({ type: 'subscribe', channel })));
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  const count = 4000;
  for (let start = 1; start <= count; start += 100) {
    await sql`SELECT pg_notify(${channel}, lpad(i::text, 7900, '0')) FROM generate_series(${start}::int, ${start + 99}::int) i`;
    await good.received(channel, start + 99, 30_000);
  }
  await sql.end();
  expect(good.messages(channel).map((message) => Number(message.payload))).toEqual(
    Array.from({ length: count }, (_, i) => i + 1),
  );
  const frames = await stuck.readAll();
  expect(closeCode(frames)).toBe(1008);
  expect(frames.filter((frame) => frame.opcode === 1).length).toBeLessThan(count / 2);
  expect(await metric(server.url, 'pgws_closes_total', { reason: 'slow_consumer' })).toBe(1);
});
