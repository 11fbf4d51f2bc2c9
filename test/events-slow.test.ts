/**
 * Backpressure on `GET /events` (docs/PROTOCOL.md "Server-Sent Events": a client that stops reading is ended
 * like a slow socket), measured on the server as its own process so every byte of RSS is the server's: what a
 * stuck stream holds is bounded by `slow_consumer_bytes`, and then the stream is ended while a socket on the same
 * topic gets every message. (The reader is a socket, whose fan-out is native: the garbage a reading stream makes
 * would blur what the stuck one holds.)
 */
import { expect, setDefaultTimeout, test } from 'bun:test';
import { connect as tcpConnect } from 'node:net';
import postgres from 'postgres';
import { databaseUrl, metric, uniqueChannel, waitFor } from './harness.ts';
import { connectMux } from './mux.ts';
import { spawnServer } from './process.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(120_000);

const MB = 1024 * 1024;

test('a stream whose client stops reading holds at most about slow_consumer_bytes, then is ended while a reader gets every message', async () => {
  await using server = await spawnServer({ toml: '', env: { DATABASE_URL: databaseUrl() } });
  const channel = uniqueChannel('slowsse');
  using good = await connectMux(server.url);
  await good.subscribe(channel);
  // A client that asks for the stream and never reads a byte of it.
  const stuck = tcpConnect(Number(server.url.port), '127.0.0.1');
  stuck.pause();
  stuck.on('error', () => {});
  stuck.write(
    `GET /events?channel=${channel} HTTP/1.1\r\nHost: ${server.url.host}\r\nAccept: text/event-stream\r\n\r\n`,
  );
  await waitFor(
    async () => (await metric(server.url, 'pgws_connections', { transport: 'sse' })) === 1,
    10_000,
    'the stream',
  );
  const rssBefore = server.rss();
  let rssMax = rssBefore;
  const count = 8000;
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  try {
    // Batches of 100 (790 KB), each read by the good client before the next, while the stuck one's backlog grows.
    for (let start = 1; start <= count; start += 100) {
      await sql`SELECT pg_notify(${channel}, lpad(i::text, 7900, '0')) FROM generate_series(${start}::int, ${start + 99}::int) i`;
      await good.received(channel, start + 99, 30_000);
      rssMax = Math.max(rssMax, server.rss());
    }
  } finally {
    await sql.end();
    stuck.destroy();
  }
  expect(good.messages(channel).map((m) => Number(m.payload))).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  // 8000 x 7.9 KB = 63 MB went out, which a stream without a bound would hold (RSS grows by 80 MB or more then);
  // the stuck stream was ended once about 1 MiB waited for it, and what remains is the reader's garbage.
  expect(rssMax - rssBefore).toBeLessThan(48 * MB);
  expect(await metric(server.url, 'pgws_closes_total', { reason: 'slow_consumer', transport: 'sse' })).toBe(1);
  expect(await metric(server.url, 'pgws_connections', { transport: 'sse' })).toBe(0);
});
