/**
 * Leaks, measured on the server as its own process so every byte and descriptor is the server's: many
 * rounds of a thousand connections that each get one notification and leave must bring RSS, open file
 * descriptors, the connection gauge and the LISTEN set back to where they started.
 */
import { expect, setDefaultTimeout, test } from 'bun:test';
import { readdirSync } from 'node:fs';
import postgres from 'postgres';
import { connect, type TestClient } from './client.ts';
import { scaled } from './fuzz/random.ts';
import { databaseUrl, metric, uniqueChannel, waitFor } from './harness.ts';
import { type ServerProcess, spawnServer } from './process.ts';
import { type RawClient, rawClient } from './raw.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const MB = 1024 * 1024;
/** GC is lazy: RSS may stay this far above the warm baseline without anything leaking. */
const RSS_TOLERANCE = 20 * MB;
const FD_TOLERANCE = 5;
const CONNECTIONS_PER_ROUND = 1000;
const ROUNDS = scaled(20);

const openFds = (server: ServerProcess) => readdirSync(`/proc/${server.process.pid}/fd`).length;
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;

async function metricsText(server: ServerProcess): Promise<string> {
  return (await fetch(new URL('/metrics', server.url))).text();
}

/** A check for `waitFor`: true once two RSS samples 200 ms apart differ by under 1 MB (the allocator settled). */
function rssSettled(server: ServerProcess): () => boolean {
  let last = { at: 0, rss: 0 };
  return () => {
    const now = performance.now();
    if (now - last.at < 200) return false;
    const rss = server.rss();
    const settled = last.at > 0 && Math.abs(rss - last.rss) < 1024 * 1024;
    last = { at: now, rss };
    return settled;
  };
}

/**
 * One round: connect in batches, one NOTIFY per channel reaches every WebSocket client, then everyone
 * leaves: most with a clean close, one in ten by sending a frame (the server closes with 1003), one in ten
 * by dropping the TCP connection with the notification still unread. Returns the fds while all were open.
 */
async function round(server: ServerProcess, sql: postgres.Sql, channels: readonly string[]): Promise<number> {
  const port = Number(server.url.port);
  const clients: TestClient[] = [];
  const raws: RawClient[] = [];
  for (let opened = 0; opened < CONNECTIONS_PER_ROUND; opened += 100) {
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const channel = channels[(opened + i) % channels.length] ?? '';
        if ((opened + i) % 10 === 0) raws.push(await rawClient('127.0.0.1', port, `/${encodeURIComponent(channel)}`));
        else clients.push(await connect(server.wsUrl(channel), { ms: 15_000 }));
      }),
    );
  }
  const fds = openFds(server);
  for (const channel of channels) await sql`SELECT pg_notify(${channel}, 'one')`;
  const got = await Promise.all(clients.map((client) => client.next(15_000)));
  expect(got.every((message) => message === 'one')).toBe(true);
  for (const [i, client] of clients.entries()) {
    if (i % 9 === 0) client.socket.send('bye');
    else client.socket.close();
  }
  for (const raw of raws) raw.socket.destroy();
  await Promise.all(clients.map((client) => client.closed));
  await waitFor(
    async () => (await metric(server.url, 'pgws_connections')) === 0,
    15_000,
    'every connection of the round to be gone',
  );
  return fds;
}

test(
  `${ROUNDS} rounds of ${CONNECTIONS_PER_ROUND} connections leave RSS, file descriptors, connections and LISTENs at baseline`,
  async () => {
    await using server = await spawnServer({ toml: '', env: { DATABASE_URL: databaseUrl() } });
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      const channels = Array.from({ length: 4 }, () => uniqueChannel('leak'));
      await round(server, sql, channels);
      await waitFor(rssSettled(server), 10_000, 'RSS to settle after the warm-up round');
      const baseline = { rss: server.rss(), fds: openFds(server) };
      console.log(`leak baseline after a warm-up round: rss ${mb(baseline.rss)}, fds ${baseline.fds}`);

      const started = performance.now();
      let peak = baseline.rss;
      let openPeak = 0;
      for (let r = 0; r < ROUNDS; r++) {
        openPeak = Math.max(openPeak, await round(server, sql, channels));
        peak = Math.max(peak, server.rss());
      }
      const seconds = (performance.now() - started) / 1000;

      // The subscriber series go with the last socket; RSS and fds may take a moment to settle.
      await waitFor(
        async () => !(await metricsText(server)).includes('pgws_channel_subscribers{'),
        10_000,
        'the subscriber series to go',
      );
      await waitFor(
        () => server.rss() <= baseline.rss + RSS_TOLERANCE,
        20_000,
        `RSS to settle within ${mb(RSS_TOLERANCE)} of ${mb(baseline.rss)} (now ${mb(server.rss())})`,
      ).catch(() => {});
      await waitFor(() => Math.abs(openFds(server) - baseline.fds) <= FD_TOLERANCE, 10_000, 'fds to settle').catch(
        () => {},
      );
      const after = { rss: server.rss(), fds: openFds(server) };
      console.log(
        `leak after ${ROUNDS} rounds x ${CONNECTIONS_PER_ROUND} connections (${ROUNDS * CONNECTIONS_PER_ROUND} in ${seconds.toFixed(1)} s): rss ${mb(after.rss)} (${after.rss >= baseline.rss ? '+' : ''}${mb(after.rss - baseline.rss)}, peak ${mb(peak)}), fds ${after.fds} (baseline ${baseline.fds}, ${openPeak} with a round open)`,
      );

      // UNLISTENed: a NOTIFY on the old channels must not reach the server at all. The sentinel's LISTEN is
      // queued behind the UNLISTENs on the one listener connection, and its NOTIFY is committed after theirs.
      const sentinel = uniqueChannel('leak_sentinel');
      using probe = await connect(server.wsUrl(sentinel));
      for (const channel of channels) await sql`SELECT pg_notify(${channel}, 'after')`;
      await sql`SELECT pg_notify(${sentinel}, 'sentinel')`;
      expect(await probe.next()).toBe('sentinel');
      const text = await metricsText(server);
      const stale = text.split('\n').filter((line) => channels.some((channel) => line.includes(`"${channel}"`)));
      expect(stale).toEqual([]);

      expect(after.rss - baseline.rss).toBeLessThanOrEqual(RSS_TOLERANCE);
      expect(Math.abs(after.fds - baseline.fds)).toBeLessThanOrEqual(FD_TOLERANCE);
      expect(openPeak).toBeGreaterThanOrEqual(baseline.fds + CONNECTIONS_PER_ROUND);
      expect(await metric(server.url, 'pgws_connections')).toBe(1);
      expect(server.process.exitCode).toBeNull();
    } finally {
      await sql.end({ timeout: 1 });
    }
  },
  60_000 * Math.max(1, ROUNDS / 20) + 30_000,
);
