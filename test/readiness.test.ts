import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { connect, upgradeStatus } from './client.ts';
import { databaseUrl, metric, startBridge, startOwnDatabase, uniqueChannel, waitFor, within } from './harness.ts';
import { startTcpProxy } from './proxy.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const status = async (base: URL, path: string) => (await fetch(new URL(path, base))).status;
const readyz = async (base: URL) => (await (await fetch(new URL('/readyz', base))).json()) as Record<string, unknown>;
const target = (url: string) => ({ host: new URL(url).hostname, port: Number(new URL(url).port || 5432) });

describe('a database that accepts LISTEN but never delivers (a transaction-mode pooler)', () => {
  test('refuses upgrades with 503 and Retry-After, reports /healthz ok and /readyz 503, and says why once', async () => {
    await using proxy = startTcpProxy({ target: target(databaseUrl()), dropNotifications: true });
    await using t = await startBridge('', {
      databaseUrl: proxy.url(databaseUrl()),
      database: 'canary_interval_ms = 200',
      waitReady: false,
    });
    await waitFor(async () => (await status(t.url, '/healthz')) === 200, 10_000, 'the LISTEN connection');
    const refused = await within(upgradeStatus(t.wsUrl(uniqueChannel())), 3000, 'a refusal after one interval');
    expect(refused).toMatchObject({ status: 503, retryAfter: '1' });
    expect(refused.body).toContain('notifications are not arriving');
    expect(await status(t.url, '/readyz')).toBe(503);
    expect(await metric(t.url, 'pgws_upgrades_refused_total', { reason: 'not_ready' })).toBe(1);
    // Many intervals later the episode is still one: the cause is logged loudly, and only once.
    await waitFor(async () => Number((await readyz(t.url))['consecutiveFailures']) >= 5, 10_000, 'five failed probes');
    const loud = t.logs.filter((line) => line.includes('transaction-mode pooler'));
    expect(loud).toHaveLength(1);
    expect(JSON.parse(loud[0] ?? '{}')).toMatchObject({ level: 'error', scope: 'canary' });
  });

  test('an upgrade that arrives before the first round trip waits for it instead of being refused', async () => {
    await using t = await startBridge('', { database: 'canary_interval_ms = 2000', waitReady: false });
    const channel = uniqueChannel();
    // Sent at once: the canary has not come back yet, and the upgrade must wait for it, not fail.
    using client = await connect(t.wsUrl(channel));
    await t.notify(channel, 'served');
    expect(await client.next()).toBe('served');
    expect(await metric(t.url, 'pgws_upgrades_refused_total', { reason: 'not_ready' })).toBe(0);
  });
});

describe('a database that goes away', () => {
  test('closes plain sockets with 1012 at the moment of the loss, and /readyz turns 503 with /healthz', async () => {
    await using db = await startOwnDatabase();
    await using t = await startBridge('', {
      databaseUrl: db.url,
      database: 'reconnect_min_ms = 20\nreconnect_max_ms = 200',
    });
    using client = await connect(t.wsUrl(uniqueChannel()));
    expect(await status(t.url, '/readyz')).toBe(200);
    await db.stop();
    // The database stays down: the close must come now, not when it is back.
    const closed = await within(client.closed, 5000, 'the 1012 close while the database is down');
    expect(closed).toEqual({ code: 1012, reason: 'database connection lost: notifications may be missed' });
    expect(await status(t.url, '/healthz')).toBe(503);
    expect(await readyz(t.url)).toMatchObject({ ready: false, database: 'down' });
    expect(await status(t.url, '/readyz')).toBe(503);
    await db.start();
    await waitFor(async () => (await status(t.url, '/readyz')) === 200, 15_000, '/readyz after the restart');
  });
});

describe('small endpoints', () => {
  test('GET /favicon.ico is a 404, not a channel', async () => {
    await using t = await startBridge();
    expect(await status(t.url, '/favicon.ico')).toBe(404);
  });
});
