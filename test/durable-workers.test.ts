/**
 * Durable channels with `[server] workers = 2` (docs/PROTOCOL.md "Durable channels": "every instance and every
 * worker reports the same {epoch, seq} for the same message"): a real server process whose workers share one
 * port, so the kernel spreads connections among them. The primary reads the rows, the workers follow; a resume
 * on any worker of more than the hot cache holds is read from the table.
 */
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { databaseUrl, uniqueChannel } from './harness.ts';
import { connectMux, type MuxClient } from './mux.ts';
import { installPgws } from './pgws.ts';
import { everyWorkerReady, perWorker, spawnServer } from './process.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

beforeAll(() => installPgws());

const WORKERS = 2;
// All of them on one worker is a 1 in 32,768 chance.
const SOCKETS = 16;
const BACKLOG = 1500;

/** Opens `SOCKETS` fresh connections and subscribes each; the answers, in order. */
async function subscribeAll(base: URL, channel: string, since?: { epoch: string; seq: number }) {
  const clients: MuxClient[] = [];
  for (let i = 0; i < SOCKETS; i++) clients.push(await connectMux(base, { ms: 15_000 }));
  const answers = await Promise.all(
    clients.map((client) => client.subscribe(channel, since === undefined ? {} : { since }, 15_000)),
  );
  return { clients, answers };
}

test('both workers report the database position, and a resume of more than the hot cache on either is read from the table', async () => {
  const channel = uniqueChannel('dur');
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  try {
    // Before the server starts, so its first read of the heads finds them: seq 3, not 0.
    await sql`SELECT pgws.send(${channel}, 'before ' || n) FROM generate_series(1, 3) n`;
    const head = async () => {
      const [row] = await sql`SELECT epoch, seq FROM pgws.streams WHERE channel = ${channel}`;
      return { epoch: String(row?.['epoch']), seq: Number(row?.['seq']) };
    };
    await using server = await spawnServer({
      toml: `[server]\nworkers = ${WORKERS}\n[channels."${channel}"]\ndurable = true\nretain = 5000\n`,
      env: { DATABASE_URL: databaseUrl() },
    });
    await everyWorkerReady(server.url, WORKERS);
    const first = await subscribeAll(server.url, channel);
    const subscriptions = (labels: Record<string, string>) =>
      perWorker(server.url, 'pgws_subscriptions', labels, WORKERS);
    expect((await subscriptions({ mode: 'multiplexed' })).every((count) => count > 0)).toBe(true);
    const at = await head();
    expect(at).toEqual({ epoch: expect.any(String), seq: 3 });
    for (const answer of first.answers) expect(answer).toMatchObject(at);
    const [{ seq: sent = 0 } = {}] = await sql`SELECT pgws.send(${channel}, 'live') AS seq`;
    for (const client of first.clients) {
      expect((await client.received(channel, 1))[0]).toMatchObject({ seq: Number(sent), payload: 'live' });
      client.socket.close();
    }
    // Sent while every client is away: more than the cache of min(retain, 1000) holds.
    await sql`SELECT pgws.send(${channel}, 'away ' || n) FROM generate_series(1, ${BACKLOG}) n`;
    const since = { epoch: at.epoch, seq: Number(sent) };
    const resumed = await subscribeAll(server.url, channel, since);
    expect((await subscriptions({ mode: 'multiplexed' })).every((count) => count > 0)).toBe(true);
    for (const answer of resumed.answers) expect(answer).toMatchObject({ ...since, recovered: true });
    const expected = Array.from({ length: BACKLOG }, (_, i) => [since.seq + i + 1, `away ${i + 1}`]);
    for (const client of resumed.clients) {
      const got = await client.received(channel, BACKLOG, 30_000);
      expect(got.map((message) => [message.seq, message.payload])).toEqual(expected);
    }
    expect(await head()).toEqual({ epoch: at.epoch, seq: since.seq + BACKLOG });
    // Each process holds only the newest 1,000 (while it has subscribers): the first 500 came from the table.
    expect(await perWorker(server.url, 'pgws_history_messages', { channel }, WORKERS)).toEqual([1000, 1000]);
    for (const client of resumed.clients) client.socket.close();
  } finally {
    await sql.end();
  }
}, 90_000);
