/**
 * Acceptance test of `pgws.v1` positions with `[server] workers > 1` (PROTOCOL.md, "Positions belong to
 * a server instance, not to one of its worker processes"): real server processes sharing one port, so
 * the kernel spreads connections among them at random.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { databaseUrl, uniqueChannel, waitFor } from './harness.ts';
import { connectMux, type MuxClient } from './mux.ts';
import { freshGet, spawnServer } from './process.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const SOCKETS = 12;

describe('workers', () => {
  // Today each worker has its own LISTEN connection and so its own positions (README: Positions). Issue 14
  // makes positions per instance; `bun test --todo` runs this to see where that stands.
  test.todo('every worker agrees on a channel epoch, seq and history, so a resume landing on any worker is recovered', async () => {
    const channel = uniqueChannel('workers');
    await using server = await spawnServer({
      toml: `[server]\nworkers = 2\n[channels."${channel}"]\nhistory = 100\n`,
      env: { DATABASE_URL: databaseUrl() },
    });
    const pids = new Set<number>();
    await waitFor(
      async () => {
        const body = JSON.parse(await freshGet(server.url, '/healthz')) as { pid: number; status: string };
        if (body.status === 'ok') pids.add(body.pid);
        return pids.size === 2;
      },
      10_000,
      'both workers to answer',
    );
    // Twelve connections: all on one worker is a 1 in 2,048 chance, so both workers are asked.
    const clients: MuxClient[] = [];
    for (let i = 0; i < SOCKETS; i++) clients.push(await connectMux(server.url, { ms: 15_000 }));
    const answers = await Promise.all(clients.map((client) => client.subscribe(channel, {}, 15_000)));
    const positions = [...new Set(answers.map((answer) => JSON.stringify([answer.epoch, answer.seq])))];
    // One position for the channel, whichever worker answered (the diff shows them all when not).
    expect(positions).toEqual(positions.slice(0, 1));
    const epoch = answers[0]?.epoch ?? '';
    const base = answers[0]?.seq ?? 0;
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    for (const payload of ['a', 'b', 'c']) await sql`SELECT pg_notify(${channel}, ${payload})`;
    await sql.end();
    for (const client of clients) {
      expect((await client.received(channel, 3)).map((m) => m.seq)).toEqual([base + 1, base + 2, base + 3]);
      client.socket.close();
    }
    // Resumes on fresh connections, wherever the kernel puts them.
    for (let i = 0; i < SOCKETS; i++) {
      using client = await connectMux(server.url, { ms: 15_000 });
      const answer = await client.subscribe(channel, { since: { epoch, seq: base } }, 15_000);
      expect(answer).toMatchObject({ epoch, seq: base, recovered: true });
      expect((await client.received(channel, 3)).map((m) => m.payload)).toEqual(['a', 'b', 'c']);
    }
  }, 60_000);
});
