import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { silentLogger } from '../src/base/log.ts';
import { createBridge } from '../src/bridge.ts';
import { connect, upgradeStatus } from './client.ts';
import {
  configFrom,
  databaseUrl,
  metric,
  startBridge,
  startOwnDatabase,
  uniqueChannel,
  waitFor,
  within,
} from './harness.ts';
import { spawnServer } from './process.ts';
import { closeCode, rawClient } from './raw.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const health = async (base: URL) => (await fetch(new URL('/healthz', base))).status;

describe('database outages', () => {
  test('closes clients with 1012 when the LISTEN backend is killed, then serves again', async () => {
    const app = uniqueChannel('app');
    await using t = await startBridge('', {
      databaseUrl: `${databaseUrl()}?application_name=${app}`,
      database: 'reconnect_min_ms = 20',
    });
    const channel = uniqueChannel();
    using before = await connect(t.wsUrl(channel));
    const started = performance.now();
    await t.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${app}`;
    expect((await within(before.closed, 10_000, 'the 1012 close')).code).toBe(1012);
    console.log(`reconnect after a killed listener: clients told after ${(performance.now() - started).toFixed(0)} ms`);
    await waitFor(async () => (await health(t.url)) === 200, 10_000, 'health');
    using after = await connect(t.wsUrl(channel));
    await t.notify(channel, 'after the reconnect');
    expect(await after.next()).toBe('after the reconnect');
    expect(await metric(t.url, 'pgws_listener_reconnects_total')).toBe(1);
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'database_lost' })).toBe(1);
  });

  test('answers 503 while the database is down, refuses upgrades at once, and recovers after a restart', async () => {
    await using db = await startOwnDatabase();
    await using t = await startBridge('', {
      databaseUrl: db.url,
      database: 'reconnect_min_ms = 20\nreconnect_max_ms = 200',
    });
    const channel = uniqueChannel();
    using survivor = await connect(t.wsUrl(channel));
    await db.stop();
    await waitFor(async () => (await health(t.url)) === 503, 10_000, 'health to turn 503');
    const refused = await within(upgradeStatus(t.wsUrl(channel)), 1000, 'an immediate refusal');
    expect(refused.status).toBe(503);
    await db.start();
    expect((await within(survivor.closed, 15_000, 'the 1012 close')).code).toBe(1012);
    await waitFor(async () => (await health(t.url)) === 200, 10_000, 'health to turn 200');
    using fresh = await connect(t.wsUrl(channel));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    await sql`SELECT pg_notify(${channel}, 'after restart')`;
    await sql.end();
    expect(await fresh.next()).toBe('after restart');
  });

  test('starts while the database is down and serves once it answers, without a restart', async () => {
    await using db = await startOwnDatabase();
    await db.stop();
    await using t = await startBridge('', {
      databaseUrl: db.url,
      database: 'reconnect_min_ms = 20\nreconnect_max_ms = 200',
      waitReady: false,
    });
    expect(await health(t.url)).toBe(503);
    await db.start();
    await waitFor(async () => (await health(t.url)) === 200, 15_000, 'health to turn 200');
    const channel = uniqueChannel();
    using client = await connect(t.wsUrl(channel));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    await sql`SELECT pg_notify(${channel}, 'late start')`;
    await sql.end();
    expect(await client.next()).toBe('late start');
  });
});

describe('workers', () => {
  test('a bridge told to listen after the database binds its port only once the database answers', async () => {
    await using db = await startOwnDatabase();
    await db.stop();
    const config = await configFrom(
      '[server]\nhost = "127.0.0.1"\nport = 0\n[database]\nreconnect_min_ms = 20\nreconnect_max_ms = 100\n',
    );
    const events: string[] = [];
    const pending = createBridge({ config, databaseUrl: db.url, log: silentLogger, listenAfterDatabase: true }).then(
      (bridge) => {
        events.push('listening');
        return bridge;
      },
    );
    // Without the option the bridge would be listening (and refusing upgrades with 503) by now.
    events.push('database starting');
    await db.start();
    await using bridge = await within(pending, 15_000, 'the bridge to listen');
    expect(events).toEqual(['database starting', 'listening']);
    expect((await fetch(new URL('/healthz', bridge.url))).status).toBe(200);
  });
});

describe('readiness canary', () => {
  test('reports a NOTIFY round trip with its latency', async () => {
    await using t = await startBridge('', { database: 'canary_interval_ms = 200' });
    await waitFor(async () => (await fetch(new URL('/readyz', t.url))).status === 200, 5000, 'readiness');
    const body = (await (await fetch(new URL('/readyz', t.url))).json()) as { ready: boolean; latencyMs: number };
    expect(body.ready).toBe(true);
    expect(body.latencyMs).toBeGreaterThan(0);
    expect(await metric(t.url, 'pgws_canary_ready')).toBe(1);
  });

  test('turns not ready when round trips stop coming back', async () => {
    await using db = await startOwnDatabase();
    await using t = await startBridge('', {
      databaseUrl: db.url,
      database: 'canary_interval_ms = 200\nreconnect_min_ms = 5000\nreconnect_max_ms = 5000',
    });
    await waitFor(async () => (await fetch(new URL('/readyz', t.url))).status === 200, 5000, 'readiness');
    await db.stop();
    await waitFor(async () => (await fetch(new URL('/readyz', t.url))).status === 503, 5000, 'readiness to fail');
  });
});

describe('slow and hostile clients', () => {
  test('closes a client that stops reading with 1008 while the others get every message', async () => {
    // The server runs in its own process, so the good client here reads concurrently with it.
    await using server = await spawnServer({ toml: '', env: { DATABASE_URL: databaseUrl() } });
    const channel = uniqueChannel('slow');
    using good = await connect(server.wsUrl(channel));
    using stuck = await rawClient('127.0.0.1', Number(server.url.port), `/${channel}`);
    const rssBefore = server.rss();
    const count = 4000;
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    // Batches of 100 (790 KB), each read by the good client before the next: it never falls 1 MiB behind,
    // however loaded the machine, while the stuck client's backlog only grows.
    for (let start = 1; start <= count; start += 100) {
      await sql`SELECT pg_notify(${channel}, lpad(i::text, 7900, '0')) FROM generate_series(${start}::int, ${start + 99}::int) i`;
      await good.received(start + 99, 30_000);
    }
    await sql.end();
    const got = good.messages;
    expect(got.map(Number)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    const frames = await stuck.readAll();
    expect(closeCode(frames)).toBe(1008);
    // 4000 x 7.9 KB = 31 MB went out; the stuck client was cut off after about 1 MiB of backlog.
    expect(frames.filter((f) => f.opcode === 1).length).toBeLessThan(count / 2);
    expect(server.rss() - rssBefore).toBeLessThan(32 * 1024 * 1024);
    expect(await metric(server.url, 'pgws_closes_total', { reason: 'slow_consumer' })).toBe(1);
  });

  test('refuses connections past max_connections with 503 and admits again when one leaves', async () => {
    await using t = await startBridge('', { server: 'max_connections = 20' });
    const channel = uniqueChannel();
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(t.wsUrl(channel))));
    expect((await upgradeStatus(t.wsUrl(channel))).status).toBe(503);
    const first = clients[0];
    first?.socket.close();
    await first?.closed;
    await waitFor(async () => (await metric(t.url, 'pgws_connections')) === 19, 5000, 'the slot to free');
    using _again = await connect(t.wsUrl(channel));
    expect(await metric(t.url, 'pgws_upgrades_refused_total', { reason: 'connection_limit' })).toBe(1);
    for (const c of clients) c.socket.close();
  });

  test('refuses a new distinct channel past max_channels with 503, but not another client on a listened one', async () => {
    await using t = await startBridge('', { server: 'max_channels = 3' });
    const names = [uniqueChannel(), uniqueChannel(), uniqueChannel()];
    const clients = await Promise.all(names.map((name) => connect(t.wsUrl(name))));
    expect((await upgradeStatus(t.wsUrl(uniqueChannel()))).status).toBe(503);
    using same = await connect(t.wsUrl(names[0] ?? ''));
    expect(same.socket.readyState).toBe(WebSocket.OPEN);
    for (const c of clients) c.socket.close();
  });

  test('reaps a peer that never answers pings, and keeps one that does', async () => {
    await using t = await startBridge('', { server: 'idle_timeout = 8' });
    const channel = uniqueChannel();
    using live = await connect(t.wsUrl(channel));
    using dead = await rawClient('127.0.0.1', Number(t.url.port), `/${channel}`);
    await waitFor(async () => (await metric(t.url, 'pgws_connections')) === 1, 30_000, 'the dead peer to be reaped');
    await dead.readAll(5000);
    await t.notify(channel, 'still here');
    expect(await live.next()).toBe('still here');
  }, 40_000);

  test('closes a client that sends invalid UTF-8 in a text frame with 1007', async () => {
    await using t = await startBridge();
    using raw = await rawClient('127.0.0.1', Number(t.url.port), `/${uniqueChannel()}`);
    raw.sendFrame(1, new Uint8Array([0xc3, 0x28]));
    expect(closeCode(await raw.readAll())).toBe(1007);
  });
});

describe('order and completeness', () => {
  test('every client that keeps up receives every one of 20,000 notifications, in commit order', async () => {
    await using t = await startBridge();
    const channel = uniqueChannel('seq');
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(t.wsUrl(channel))));
    const count = 20_000;
    for (let start = 1; start <= count; start += 5000) {
      await t.sql`SELECT pg_notify(${channel}, i::text) FROM generate_series(${start}::int, ${start + 4999}::int) i`;
    }
    const expected = Array.from({ length: count }, (_, i) => String(i + 1));
    for (const client of clients) expect(await client.received(count, 30_000)).toEqual(expected);
    for (const c of clients) c.socket.close();
  });
});
