/**
 * Acceptance test of `pgws.v1` positions with `[server] workers > 1` (docs/PROTOCOL.md "Positions": a position
 * is the instance's, not the worker process's): real server processes sharing one port, so
 * the kernel spreads connections among them at random.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { connect, type TestClient } from './client.ts';
import { databaseUrl, metricIn, uniqueChannel, waitFor, within } from './harness.ts';
import { connectMux, type MuxClient } from './mux.ts';
import {
  everyWorkerReady as everyProcessReady,
  freshGet,
  perWorker as processFigures,
  spawnServer,
} from './process.ts';
import { rawClient } from './raw.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const WORKERS = 4;
// Forty connections: all on fewer than four workers is a (3/4)^40 chance per worker, about 1 in 100,000.
const SOCKETS = 40;

/** Each process's figure of one series (worker 0 is the primary). */
const perWorker = (base: URL, name: string, labels: Record<string, string>, workers = WORKERS) =>
  processFigures(base, name, labels, workers);

/** Waits until every process's readiness canary has come back (after a start or a reconnect). */
const everyWorkerReady = (base: URL, workers = WORKERS) => everyProcessReady(base, workers);

describe('workers', () => {
  test('every worker agrees on a channel epoch, seq and history, so a resume landing on any worker is recovered', async () => {
    const channel = uniqueChannel('workers');
    await using server = await spawnServer({
      toml: `[server]\nworkers = ${WORKERS}\n[channels."${channel}"]\nhistory = 100\n`,
      env: { DATABASE_URL: databaseUrl() },
    });
    const pids = new Set<number>();
    await waitFor(
      async () => {
        const body = JSON.parse(await freshGet(server.url, '/healthz')) as { pid: number; status: string };
        if (body.status === 'ok') pids.add(body.pid);
        return pids.size === WORKERS;
      },
      15_000,
      'every worker to answer',
    );
    const clients: MuxClient[] = [];
    for (let i = 0; i < SOCKETS; i++) clients.push(await connectMux(server.url, { ms: 15_000 }));
    const answers = await Promise.all(clients.map((client) => client.subscribe(channel, {}, 15_000)));
    // Every worker answered some of them, so agreement below is across workers, not within one.
    const subscribed = await perWorker(server.url, 'pgws_subscriptions', { mode: 'multiplexed' });
    expect(subscribed.filter((count) => count > 0).length).toBe(WORKERS);
    const positions = [...new Set(answers.map((answer) => JSON.stringify([answer.epoch, answer.seq])))];
    // One position for the channel, whichever worker answered (the diff shows them all when not).
    expect(positions).toEqual(positions.slice(0, 1));
    const epoch = answers[0]?.epoch ?? '';
    const base = answers[0]?.seq ?? 0;
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    const notify = async (...payloads: string[]) => {
      for (const payload of payloads) await sql`SELECT pg_notify(${channel}, ${payload})`;
    };
    try {
      await notify('a', 'b', 'c');
      for (const client of clients) {
        expect((await client.received(channel, 3)).map((m) => m.seq)).toEqual([base + 1, base + 2, base + 3]);
        client.socket.close();
      }
      // Two more while every client is away.
      await notify('d', 'e');
      // Resumes from after "a" on fresh connections, wherever the kernel puts them.
      const resumed: MuxClient[] = [];
      for (let i = 0; i < SOCKETS; i++) {
        const client = await connectMux(server.url, { ms: 15_000 });
        resumed.push(client);
        const answer = await client.subscribe(channel, { since: { epoch, seq: base + 1 } }, 15_000);
        expect(answer).toMatchObject({ epoch, seq: base + 1, recovered: true });
      }
      await notify('f');
      for (const client of resumed) await client.received(channel, 5);
      // A sentinel sent after all of them: a doubled or stray message would come before it.
      await notify('end');
      for (const client of resumed) {
        await client.until((frames) => frames.some((f) => f.payload === 'end'), 10_000, 'the sentinel');
        expect(client.messages(channel).map((m) => [m.seq, m.payload])).toEqual([
          [base + 2, 'b'],
          [base + 3, 'c'],
          [base + 4, 'd'],
          [base + 5, 'e'],
          [base + 6, 'f'],
          [base + 7, 'end'],
        ]);
        client.socket.close();
      }
    } finally {
      await sql.end();
    }
  }, 90_000);

  test('one LISTEN connection serves the instance, and /metrics is the whole server wherever the scrape lands', async () => {
    const channel = uniqueChannel('workers');
    await using server = await spawnServer({
      toml: `[server]\nworkers = ${WORKERS}\n`,
      env: { DATABASE_URL: databaseUrl() },
    });
    await everyWorkerReady(server.url);
    const plainUrl = `ws://${server.url.host}/${channel}`;
    const clients: TestClient[] = [];
    for (let i = 0; i < SOCKETS; i++) clients.push(await connect(plainUrl));
    expect((await perWorker(server.url, 'pgws_connections', {})).filter((count) => count > 0).length).toBe(WORKERS);
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      await sql`SELECT pg_notify(${channel}, 'one'), pg_notify(${channel}, 'two')`;
      for (const client of clients) expect(await client.received(2)).toEqual(['one', 'two']);
      // Only the primary's connection ever LISTENed the channel (one per worker would make it WORKERS).
      const [row] = await sql`
        SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE application_name = 'pg-notify-ws' AND query LIKE ${`%LISTEN "${channel}"%`}`;
      expect(row?.['n']).toBe(1);
    } finally {
      await sql.end();
    }
    // Several scrapes on fresh connections land on different processes; every one is the whole server.
    for (let i = 0; i < 8; i++) {
      const text = await freshGet(server.url, '/metrics');
      expect(metricIn(text, 'pgws_connections')).toBe(SOCKETS);
      expect(metricIn(text, 'pgws_notifications_received_total', { channel })).toBe(2);
      expect(metricIn(text, 'pgws_frames_delivered_total', { channel })).toBe(2 * SOCKETS);
      expect(metricIn(text, 'pgws_listener_up')).toBe(1);
      // The clients' one channel; the workers' probe channels, LISTENed here too, are the bridge's own.
      expect(metricIn(text, 'pgws_listen_channels')).toBe(1);
    }
    for (const client of clients) client.socket.close();
  }, 90_000);

  test("a lost LISTEN connection gives every worker's subscribers one gap at the same new epoch, and all go on in it", async () => {
    const app = uniqueChannel('app');
    const channel = uniqueChannel('workers');
    await using server = await spawnServer({
      toml: `[server]\nworkers = ${WORKERS}\n[database]\nreconnect_min_ms = 20\n[channels."${channel}"]\nhistory = 10\n`,
      env: { DATABASE_URL: `${databaseUrl()}?application_name=${app}` },
    });
    await everyWorkerReady(server.url);
    const clients: MuxClient[] = [];
    for (let i = 0; i < SOCKETS; i++) clients.push(await connectMux(server.url, { ms: 15_000 }));
    const [before] = await Promise.all(clients.map((client) => client.subscribe(channel, {}, 15_000)));
    expect((await perWorker(server.url, 'pgws_subscriptions', { mode: 'multiplexed' })).every((n) => n > 0)).toBe(true);
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${app}`;
      const gaps = await Promise.all(clients.map((client) => client.next('gap', 15_000)));
      const epochs = new Set(gaps.map((gap) => gap.epoch));
      expect(epochs.size).toBe(1);
      expect(epochs.has(before?.epoch)).toBe(false);
      expect(gaps[0]).toMatchObject({ channel, seq: 0 });
      await everyWorkerReady(server.url);
      await sql`SELECT pg_notify(${channel}, 'after')`;
      for (const client of clients) {
        expect(await client.next('message', 10_000)).toEqual({ type: 'message', channel, seq: 1, payload: 'after' });
        expect(client.frames.filter((frame) => frame.type === 'gap')).toHaveLength(1);
        client.socket.close();
      }
      // The new epoch is the instance's: recovered on whichever worker.
      const [epoch] = epochs;
      for (let i = 0; i < SOCKETS / 4; i++) {
        using late = await connectMux(server.url, { ms: 15_000 });
        const answer = await late.subscribe(channel, { since: { epoch: epoch ?? '', seq: 0 } }, 15_000);
        expect(answer).toMatchObject({ recovered: true, epoch, seq: 0 });
        expect(await late.next('message')).toMatchObject({ seq: 1, payload: 'after' });
      }
    } finally {
      await sql.end();
    }
  }, 90_000);

  test("a restarted worker starts from the primary's history, so resumes landing on it are recovered too", async () => {
    const channel = uniqueChannel('workers');
    await using server = await spawnServer({
      toml: `[server]\nworkers = 2\n[channels."${channel}"]\nhistory = 10\n`,
      env: { DATABASE_URL: databaseUrl() },
    });
    using first = await connectMux(server.url, { ms: 15_000 });
    const { epoch = '', seq: base = 0 } = await first.subscribe(channel, {}, 15_000);
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    for (const payload of ['a', 'b', 'c']) await sql`SELECT pg_notify(${channel}, ${payload})`;
    await sql.end();
    await first.received(channel, 3);
    const workerPid = async () => {
      for (;;) {
        const body = JSON.parse(await freshGet(server.url, '/healthz')) as { pid: number; status: string };
        if (body.status === 'ok' && body.pid !== server.process.pid) return body.pid;
      }
    };
    const killed = await within(workerPid(), 10_000, 'the worker to answer');
    process.kill(killed, 'SIGKILL');
    await waitFor(async () => (await workerPid()) !== killed, 15_000, 'the restarted worker to answer');
    await everyWorkerReady(server.url, 2);
    // Twelve fresh connections: all on the primary is a 1 in 4,096 chance, so the new worker is asked.
    for (let i = 0; i < 12; i++) {
      using client = await connectMux(server.url, { ms: 15_000 });
      const answer = await client.subscribe(channel, { since: { epoch, seq: base } }, 15_000);
      expect(answer).toMatchObject({ epoch, seq: base, recovered: true });
      expect((await client.received(channel, 3)).map((m) => m.payload)).toEqual(['a', 'b', 'c']);
    }
    const served = await perWorker(server.url, 'pgws_replays_total', { recovered: 'true' }, 2);
    expect(served.every((n) => n > 0)).toBe(true);
  }, 90_000);

  test('max_channels counts for the whole instance, whichever worker a client lands on', async () => {
    const [first, second, third] = [uniqueChannel('limit'), uniqueChannel('limit'), uniqueChannel('limit')];
    await using server = await spawnServer({
      toml: `[server]\nworkers = ${WORKERS}\nmax_channels = 2\n`,
      env: { DATABASE_URL: databaseUrl() },
    });
    await everyWorkerReady(server.url);
    const open: TestClient[] = [];
    for (let i = 0; i < SOCKETS; i++) open.push(await connect(`ws://${server.url.host}/${first}`));
    open.push(await connect(`ws://${server.url.host}/${second}`));
    // Fresh connections, so the kernel spreads them: every worker refuses a third channel.
    for (let i = 0; i < 12; i++) {
      using raw = await rawClient(server.url.hostname, Number(server.url.port), `/${third}`);
      expect(raw.response).toStartWith('HTTP/1.1 503');
      using mux = await connectMux(server.url, { ms: 15_000 });
      expect(await mux.request({ type: 'subscribe', channel: third })).toMatchObject({
        type: 'error',
        code: 'unavailable',
        message: 'channel limit reached (2 distinct channels); retry later',
      });
      // A channel already LISTENed is no new channel.
      expect(await mux.subscribe(first, {}, 15_000)).toMatchObject({ type: 'subscribed', channel: first });
    }
    const refused = metricIn(await freshGet(server.url, '/metrics'), 'pgws_upgrades_refused_total', {
      reason: 'channel_limit',
    });
    expect(refused).toBe(12);
    for (const client of open) client.socket.close();
  }, 90_000);
});
