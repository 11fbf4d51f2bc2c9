/**
 * `GET /events` with `[server] workers > 1` (docs/PROTOCOL.md "Positions": a position is the instance's):
 * real server processes sharing one port, streams on fresh connections so the kernel spreads them among the
 * processes, and a cursor written by one process resumed by whichever one the reconnect lands on.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { type EventsClient, streamEvents } from './events.ts';
import { databaseUrl, uniqueChannel } from './harness.ts';
import { everyWorkerReady, perWorker, spawnServer } from './process.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(90_000);

const WORKERS = 3;
// Thirty streams: all on fewer than three processes is a 3 x (2/3)^30 chance, about 1 in 70,000.
const STREAMS = 30;

describe('streams and workers', () => {
  test('streams work on every worker, and a cursor from one resumes on any of them with every missed message', async () => {
    const channel = uniqueChannel('wstream');
    await using server = await spawnServer({
      toml: `[server]\nworkers = ${WORKERS}\n[channels."${channel}"]\nhistory = 100\n`,
      env: { DATABASE_URL: databaseUrl() },
    });
    await everyWorkerReady(server.url, WORKERS, 20_000);
    const streams: EventsClient[] = [];
    try {
      for (let i = 0; i < STREAMS; i++) {
        const stream = await streamEvents(server.url, `channel=${channel}`, { fresh: true });
        streams.push(stream);
        await stream.next('subscribed', 15_000);
      }
      const streamsPerWorker = await perWorker(server.url, 'pgws_connections', { transport: 'sse' }, WORKERS);
      expect(streamsPerWorker.every((count) => count > 0)).toBe(true);
      const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
      await sql`SELECT pg_notify(${channel}, 'one')`;
      for (const stream of streams) expect((await stream.next('message', 15_000)).data).toMatchObject({ seq: 1 });
      // Every stream's cursor is the same position, written by whichever process served it.
      expect(new Set(streams.map((stream) => stream.lastId())).size).toBe(1);
      const cursor = streams[0]?.lastId() ?? '';
      for (const stream of streams) stream.close();
      await sql`SELECT pg_notify(${channel}, 'two'), pg_notify(${channel}, 'three')`;
      await sql.end();
      for (let i = 0; i < 6; i++) {
        using again = await streamEvents(server.url, `channel=${channel}`, {
          fresh: true,
          headers: { 'last-event-id': cursor },
        });
        expect((await again.next('subscribed', 15_000)).data).toMatchObject({ seq: 1, recovered: true });
        await again.until(() => again.messages(channel).length === 2, 15_000, 'the two missed messages');
        expect(again.messages(channel).map((m) => m['payload'])).toEqual(['two', 'three']);
      }
    } finally {
      for (const stream of streams) stream.close();
    }
  });
});
