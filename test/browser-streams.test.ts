/**
 * Streams in real Chromium: a plain `EventSource` keeps every message of two channels across a restart of the
 * server processes that serve it, by the browser's own reconnect and `Last-Event-ID` alone; and the console's
 * client, behind a proxy that refuses WebSocket upgrades, falls back to `GET /events` and `POST` by itself.
 * Screenshots go to `.screenshots/`, to be looked at.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import postgres from 'postgres';
import { type Browser, chromiumInstalled, launchBrowser, SCREENSHOTS } from './browser.ts';
import { databaseUrl, metricIn, startBridge, uniqueChannel, waitFor } from './harness.ts';
import { everyWorkerReady, freshGet, spawnServer } from './process.ts';
import { startTcpProxy } from './proxy.ts';

setDefaultTimeout(120_000);

const WAIT = { timeout: 20_000 };
const WORKERS = 3;

/** The server's worker processes: its children (the primary is the process the test spawned). */
function workerPids(primary: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        // Field 4 of /proc/PID/stat is the parent; the command in field 2 may hold spaces, so read after ")".
        return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]) === primary;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Which process serves each SSE stream: index 0 is the primary, 1.. the workers. */
async function streamsByProcess(base: URL): Promise<number[]> {
  const text = await freshGet(base, '/metrics?by=worker');
  return Array.from({ length: WORKERS }, (_, w) =>
    metricIn(text, 'pgws_connections', { transport: 'sse', worker: String(w) }),
  );
}

// Runs in the page: an EventSource on the two channels, every event kept in `window.seen`, each message shown.
const OPEN_EVENT_SOURCE = `(url) => {
  document.body.innerHTML = '<h1 style="font:16px system-ui">EventSource ' + url + '</h1><ol id="got" style="font:12px monospace"></ol>';
  window.seen = { messages: [], subscribed: [], opens: 0 };
  const show = (text) => document.getElementById('got').append(Object.assign(document.createElement('li'), { textContent: text }));
  const source = new EventSource(url);
  source.onopen = () => { window.seen.opens++; show('open #' + window.seen.opens); };
  source.addEventListener('subscribed', (e) => { window.seen.subscribed.push(JSON.parse(e.data)); show('subscribed ' + e.data); });
  source.addEventListener('message', (e) => { const m = JSON.parse(e.data); window.seen.messages.push(m); show(m.channel.slice(0, 6) + ' seq ' + m.seq + ': ' + m.payload); });
  window.source = source;
}`;

describe.skipIf(!chromiumInstalled)('streams in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(() => browser?.[Symbol.asyncDispose]());

  test('an EventSource on two channels keeps every message across a restart of the processes serving it, with nothing lost or doubled', async () => {
    const [orders, chat] = [uniqueChannel('orders'), uniqueChannel('chat')];
    await using server = await spawnServer({
      toml: `[server]\nworkers = ${WORKERS}\n[channels."${orders}"]\nhistory = 100\n[channels."${chat}"]\nhistory = 100\n`,
      env: { DATABASE_URL: databaseUrl() },
    });
    // /healthz answered by one process says nothing of the others: a stream must not land on one still starting.
    await everyWorkerReady(server.url, WORKERS);
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    const page = await browser.page(new URL('/healthz', server.url));
    try {
      const url = `/events?channel=${encodeURIComponent(orders)}&channel=${encodeURIComponent(chat)}`;
      // The kernel picks the process; a stream on the primary would not be cut by restarting the workers.
      for (let attempt = 0; ; attempt++) {
        await page.evaluate(`(${OPEN_EVENT_SOURCE})(${JSON.stringify(url)})`);
        await waitFor(async () => (await streamsByProcess(server.url)).some((n) => n > 0), 10_000, 'the stream');
        if ((await streamsByProcess(server.url))[0] === 0) break;
        if (attempt === 20) throw new Error('every stream landed on the primary');
        await page.evaluate('window.source.close()');
        await waitFor(async () => (await streamsByProcess(server.url)).every((n) => n === 0), 10_000, 'the close');
      }
      const send = async (from: number, to: number) => {
        for (let i = from; i <= to; i++) {
          await sql`SELECT pg_notify(${orders}, ${`order ${i}`}), pg_notify(${chat}, ${`chat ${i}`})`;
        }
      };
      const received = () => page.evaluate('window.seen.messages.length') as Promise<number>;
      await send(1, 5);
      await waitFor(async () => (await received()) === 10, 10_000, 'the first ten messages');

      // A rolling restart: every worker is stopped; the primary, which holds the instance's positions, stays.
      for (const pid of workerPids(server.process.pid)) process.kill(pid, 'SIGTERM');
      await send(6, 10);
      await waitFor(async () => (await page.evaluate('window.seen.opens')) === 2, 30_000, 'the browser to reconnect');
      await send(11, 15);
      await waitFor(async () => (await received()) >= 30, 20_000, 'all thirty messages');

      const seen = (await page.evaluate('window.seen')) as {
        messages: { channel: string; seq: number; payload: string }[];
        subscribed: { channel: string; recovered?: boolean }[];
      };
      const of = (channel: string) => seen.messages.filter((m) => m.channel === channel);
      const expected = (prefix: string) => Array.from({ length: 15 }, (_, i) => [i + 1, `${prefix} ${i + 1}`]);
      expect(of(orders).map((m) => [m.seq, m.payload])).toEqual(expected('order'));
      expect(of(chat).map((m) => [m.seq, m.payload])).toEqual(expected('chat'));
      // The reconnect sent Last-Event-ID by itself, and both channels were recovered from it.
      expect(seen.subscribed.slice(2)).toEqual([
        expect.objectContaining({ channel: orders, recovered: true }),
        expect.objectContaining({ channel: chat, recovered: true }),
      ]);
      await page.screenshot({ path: `${SCREENSHOTS}/eventsource-restart.png`, fullPage: true });
    } finally {
      await page.close();
      await sql.end({ timeout: 1 });
    }
  });

  test('the console behind a proxy that refuses WebSocket upgrades falls back to Server-Sent Events and POST, and says so', async () => {
    const stock = uniqueChannel('stock');
    await using t = await startBridge(`[channels."${stock}"]\npublish = true\nhistory = 10\n`);
    await using proxy = startTcpProxy({
      target: { host: '127.0.0.1', port: Number(t.url.port) },
      refuseUpgrades: true,
    });
    await using c = await browser.open(new URL(`http://127.0.0.1:${proxy.port}/`), {
      channels: [stock],
      transport: 'auto',
    });
    await c.page.locator('#conn', { hasText: 'connected over SSE' }).waitFor(WAIT);
    await c.sub(stock).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    await c.events('over Server-Sent Events').waitFor(WAIT);
    expect(await c.page.locator('#transport').inputValue()).toBe('auto');
    await c.page.getByLabel('Channel', { exact: true }).selectOption(stock);
    // A raw channel: the console sends the text as it is.
    await c.page.getByLabel('Payload (text, sent as is)').fill('published through POST');
    await c.page.getByLabel('Payload (text, sent as is)').press('Enter');
    await c.page.locator('#pub-result').getByText(`published to "${stock}"`).waitFor(WAIT);
    await c.messages(stock).filter({ hasText: 'published through POST' }).waitFor(WAIT);
    await t.notify(stock, 'from psql');
    await c.messages(stock).filter({ hasText: 'from psql' }).waitFor(WAIT);
    expect(await c.messages(stock).count()).toBe(2);
    await c.shot('console-sse-fallback');
  });
});
