/**
 * The console (console.html on /client.js) in real Chromium against a real bridge and PostgreSQL:
 * what a person sees when they subscribe, publish, filter, pause, and when the bridge or its database
 * goes away. Every test saves screenshots in `.screenshots/` to be looked at, not only asserted on.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { type Browser, chromiumInstalled, launchBrowser } from './browser.ts';
import { databaseUrl, startBridge, startOwnDatabase } from './harness.ts';
import { installPgws } from './pgws.ts';
import { spawnServer } from './process.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only
// the first file of a run (whichever the directory lists first). A restart or an outage takes seconds.
setDefaultTimeout(60_000);

// Other suites (and other checkouts) may share the database: names of our own, still readable on screen.
const tag = Math.random().toString(36).slice(2, 6);
const ORDERS = `orders_${tag}`;
const STOCK = `stock_${tag}`;
const CHAT = `chat room ${tag}`;

const TOML = `
[channels.${ORDERS}]
description = "Order changes from the orders trigger"
history = 100
[channels.${ORDERS}.schema]
type = "object"
required = ["id", "status"]
[channels.${ORDERS}.schema.properties.id]
type = "integer"
[channels.${ORDERS}.schema.properties.status]
type = "string"
enum = ["new", "paid", "shipped"]
[channels.${ORDERS}.schema.properties.total]
type = "number"

[channels.${STOCK}]
description = "Stock levels; clients may publish"
publish = true
[channels.${STOCK}.schema]
type = "object"
required = ["sku", "quantity"]
additionalProperties = false
[channels.${STOCK}.schema.properties.sku]
type = "string"
pattern = "^[A-Z0-9-]{3,32}$"
[channels.${STOCK}.schema.properties.quantity]
type = "integer"
minimum = 0
[channels.${STOCK}.schema.properties.warehouse]
type = "string"
default = "main"
`;

const WAIT = { timeout: 15_000 };

describe.skipIf(!chromiumInstalled)('the console in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(() => browser?.[Symbol.asyncDispose]());

  test('subscribes to two channels at once and shows each notification with time, channel, seq and pretty JSON', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url);
    const { page } = c;
    await page.getByRole('button', { name: `Subscribe to ${JSON.stringify(ORDERS)}` }).click();
    // The keyboard path: a label, a field, Enter.
    await page.getByLabel('Subscribe by name').focus();
    await page.keyboard.type(CHAT);
    await page.keyboard.press('Enter');
    await c.sub(ORDERS).and(page.locator('[data-state="live"]')).waitFor(WAIT);
    await c.sub(CHAT).and(page.locator('[data-state="live"]')).waitFor(WAIT);

    await t.notify(ORDERS, JSON.stringify({ id: 7, status: 'paid', total: 12.5 }));
    await t.notify(CHAT, 'hello from psql');
    await c.messages(CHAT).first().waitFor(WAIT);
    const order = c.messages(ORDERS).first();
    await order.waitFor(WAIT);
    expect(await order.locator('time').textContent()).toMatch(/^\d\d:\d\d:\d\d\.\d{3}$/);
    expect(await order.locator('.name').textContent()).toBe(JSON.stringify(ORDERS));
    expect(await order.locator('.seq').textContent()).toBe('seq 1');
    expect(await order.locator('pre').textContent()).toBe('{\n  "id": 7,\n  "status": "paid",\n  "total": 12.5\n}');
    expect(await c.messages(CHAT).locator('pre').textContent()).toBe('hello from psql');
    await c.shot('two-channels');
  });

  test('shows names exactly, and a name the server refuses is reported and not retried', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url);
    const input = c.page.getByLabel('Subscribe by name');
    await input.fill(`${ORDERS} `);
    await input.press('Enter');
    const lookalike = c.sub(`${ORDERS} `);
    await lookalike.and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    expect(await lookalike.locator('.name').textContent()).toBe(`"${ORDERS} "`);
    expect(await lookalike.textContent()).toContain(`Did you mean "${ORDERS}"?`);

    const tooLong = 'x'.repeat(64);
    await input.fill(tooLong);
    await input.press('Enter');
    await c.sub(tooLong).and(c.page.locator('[data-state="refused"]')).waitFor(WAIT);
    expect(await c.sub(tooLong).textContent()).toContain('bad_channel');
    expect(await c.sub(tooLong).textContent()).toContain('not retried');
    // Still refused, and reported once, after a later message has made it all the way to the page.
    await t.notify(`${ORDERS} `, 'later');
    await c.messages(`${ORDERS} `).first().waitFor(WAIT);
    expect(await c.events(/refused: bad_channel/).count()).toBe(1);
    expect(await c.sub(tooLong).getAttribute('data-state')).toBe('refused');
    await c.shot('names-and-refusal');
  });

  test('checks a filter on the server: a bad one is shown on its subscription, a good one narrows the stream', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url, { channels: [ORDERS] });
    const row = c.sub(ORDERS);
    await row.and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    const filter = row.getByLabel('Filter');
    await filter.fill('{"total":{"above":100}}');
    await filter.press('Enter');
    await row.and(c.page.locator('[data-state="refused"]')).waitFor(WAIT);
    expect(await row.locator('.filter-err').textContent()).toContain('bad_request');
    expect(await filter.getAttribute('aria-invalid')).toBe('true');
    await c.shot('filter-refused');

    await filter.fill('{"total":{"gte":100}}');
    await filter.press('Enter');
    await row.and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    await t.notify(ORDERS, JSON.stringify({ id: 1, status: 'new', total: 5 }));
    await t.notify(ORDERS, JSON.stringify({ id: 2, status: 'paid', total: 250 }));
    await c.messages(ORDERS).filter({ hasText: '"id": 2' }).waitFor(WAIT);
    // The small order was sent first: had it passed the filter, it would be on the page already.
    expect(await c.messages(ORDERS).count()).toBe(1);
    await c.shot('filter-applied');
  });

  test('publishes: the server’s validation issues are shown inline, and a valid payload arrives', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url, { channels: [STOCK] });
    await c.sub(STOCK).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    await c.page.getByLabel('Channel', { exact: true }).selectOption(STOCK);
    const payload = c.page.getByLabel('Payload (JSON)');
    await payload.fill('{"sku":"ab","quantity":-1}');
    await payload.press('Enter');
    const result = c.page.locator('#pub-result');
    await result.locator('.issues li').first().waitFor(WAIT);
    expect(await result.textContent()).toContain('invalid_payload');
    expect(await result.locator('.issues li code').allTextContents()).toEqual(['sku', 'quantity']);
    expect(await payload.getAttribute('aria-invalid')).toBe('true');
    await c.shot('publish-invalid');

    await payload.fill('{"sku":"AB-12","quantity":3}');
    await payload.press('Enter');
    await result.getByText(`published to "${STOCK}"`).waitFor(WAIT);
    // The bridge sends the parsed output: the schema's default is filled in.
    const arrived = c.messages(STOCK).first();
    await arrived.waitFor(WAIT);
    expect(JSON.parse((await arrived.locator('pre').textContent()) ?? '')).toEqual({
      sku: 'AB-12',
      quantity: 3,
      warehouse: 'main',
    });
    await c.shot('publish-valid');
  });

  test('shows a channel’s schemas on demand: what subscribers receive and what a publish must send', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url);
    const stock = c.page.locator(`#channels > li[data-channel="${STOCK}"]`);
    const details = stock.locator('details');
    expect(await details.getAttribute('open')).toBeNull();
    await details.locator('summary').click();
    // The default makes the two differ: `warehouse` is always in what subscribers receive.
    const [output, input] = await details.locator('pre').allTextContents();
    expect(JSON.parse(output ?? '')).toMatchObject({ required: ['sku', 'quantity', 'warehouse'] });
    expect(JSON.parse(input ?? '')).toMatchObject({ required: ['sku', 'quantity'] });
    await c.page.locator('#pub-schema summary').click();
    expect(JSON.parse((await c.page.locator('#pub-schema pre').textContent()) ?? '')).toEqual(JSON.parse(input ?? ''));
    await c.shot('schemas');
  });

  test('marks durable channels in the list with what they keep, and plain ones not at all', async () => {
    // A durable channel needs pgws.send in the database the bridge reads.
    await installPgws();
    const ledger = `ledger_${tag}`;
    const audit = `audit ${tag}`;
    await using t = await startBridge(
      `${TOML}\n[channels.${ledger}]\ndescription = "Payments, kept in the database"\ndurable = true\n` +
        `[channels."${audit}"]\ndurable = true\nretain = 500\nretain_seconds = 3600\n`,
    );
    await using c = await browser.open(t.url);
    const item = (name: string) => c.page.locator(`#channels > li[data-channel="${name}"]`);
    expect(await item(ledger).locator('.badge.durable').textContent()).toBe('durable');
    expect(await item(ledger).locator('.retention').textContent()).toBe('keeps 10,000 messages / 24 h');
    expect(await item(ledger).locator('.retention').getAttribute('title')).toContain(
      'the newest 10,000, none older than 24 h',
    );
    expect(await item(audit).locator('.retention').textContent()).toBe('keeps 500 messages / 1 h');
    for (const plain of [ORDERS, STOCK]) {
      expect(await item(plain).locator('.badge').allTextContents()).not.toContain('durable');
      expect(await item(plain).locator('.retention').count()).toBe(0);
    }
    await c.shot('durable');
  });

  test('shows per channel how many payloads the bridge dropped as invalid, and why', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url, { channels: [ORDERS] });
    await c.sub(ORDERS).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    await t.notify(ORDERS, 'not json at all');
    await t.notify(ORDERS, JSON.stringify({ id: 'seven', status: 'lost' }));
    await t.notify(ORDERS, JSON.stringify({ id: 8, status: 'new' }));
    await c.sub(ORDERS).getByText('dropped as invalid: 1 schema, 1 not JSON').waitFor(WAIT);
    // The row updates at once; the stream a moment later, with the next batch.
    await c.events('failed the schema').waitFor(WAIT);
    await c.events('not JSON').waitFor(WAIT);
    expect(await c.events('failed the schema').count()).toBe(1);
    expect(await c.events('not JSON').count()).toBe(1);
    expect(await c.messages(ORDERS).count()).toBe(1);
    await c.shot('dropped');
  });

  test('survives a bridge restart: the reconnect is an event in the stream and messages flow again', async () => {
    const config = `[server]\nunknown_channels = "raw"\n${TOML}`;
    const env = { DATABASE_URL: databaseUrl() };
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    let server = await spawnServer({ toml: config, env });
    try {
      const base = server.url;
      await using c = await browser.open(base, { channels: [ORDERS] });
      const row = c.sub(ORDERS);
      await row.and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
      await sql`SELECT pg_notify(${ORDERS}, ${JSON.stringify({ id: 1, status: 'new' })})`;
      await c.messages(ORDERS).first().waitFor(WAIT);

      expect(await server.signal('SIGTERM')).toBe(0);
      await c.events('connection lost (1001').waitFor(WAIT);
      await c.page.locator('#conn', { hasText: 'reconnecting' }).waitFor(WAIT);
      await c.shot('restart-down');
      server = await spawnServer({ toml: config, env: { ...env, PORT: base.port } });
      expect(server.url.port).toBe(base.port);

      await c.events('reconnected').waitFor(WAIT);
      // A new process is a new epoch: the resume is not recovered, and the console says so.
      await c.events('not recovered').waitFor(WAIT);
      await row.and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
      await sql`SELECT pg_notify(${ORDERS}, ${JSON.stringify({ id: 2, status: 'paid' })})`;
      await c.messages(ORDERS).filter({ hasText: '"id": 2' }).waitFor(WAIT);
      expect(await c.page.locator('#conn').textContent()).toBe('connected');
      await c.shot('restart-back');
    } finally {
      await server[Symbol.asyncDispose]();
      await sql.end({ timeout: 1 });
    }
  });

  test('a database outage shows "database down" and the gap; messages flow again when it is back', async () => {
    await using db = await startOwnDatabase();
    await using t = await startBridge(TOML, {
      databaseUrl: db.url,
      database: 'reconnect_min_ms = 50\nreconnect_max_ms = 500\ncanary_interval_ms = 500',
    });
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await using c = await browser.open(t.url, { channels: [ORDERS] });
      await c.sub(ORDERS).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
      await c.page.locator('#db', { hasText: 'database up · ready' }).waitFor(WAIT);
      await sql.end({ timeout: 1 });
      await db.stop();
      await c.page.locator('#db', { hasText: 'database down' }).waitFor(WAIT);
      await c.events(/^.*gap: the bridge lost its database connection/).waitFor(WAIT);
      await c.sub(ORDERS).getByText('database down: nothing arrives until it is back').waitFor(WAIT);
      // The socket itself stays open through the outage: the pill for the database is what turns red.
      expect(await c.page.locator('#conn').textContent()).toBe('connected');
      // A subscribe made now is refused as `unavailable`, and the client retries it by itself.
      await c.page.getByLabel('Subscribe by name').fill(CHAT);
      await c.page.getByLabel('Subscribe by name').press('Enter');
      await c.sub(CHAT).and(c.page.locator('[data-state="retrying"]')).waitFor(WAIT);
      await c.shot('database-down');

      await db.start();
      await c.page.locator('#db', { hasText: 'database up · ready' }).waitFor({ timeout: 30_000 });
      await c.sub(CHAT).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
      const again = postgres(db.url, { max: 1, onnotice: () => {} });
      await again`SELECT pg_notify(${ORDERS}, ${JSON.stringify({ id: 3, status: 'shipped' })})`;
      await again.end({ timeout: 1 });
      await c.messages(ORDERS).filter({ hasText: '"id": 3' }).waitFor(WAIT);
      await c.shot('database-back');
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test('pause holds messages and says how many; resume shows them in order', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url, { channels: [CHAT] });
    await c.sub(CHAT).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    const pause = c.page.locator('#pause');
    await pause.click();
    expect(await pause.getAttribute('aria-pressed')).toBe('true');
    for (const text of ['one', 'two', 'three']) await t.notify(CHAT, text);
    await c.page.locator('#pause', { hasText: 'Resume (3 held)' }).waitFor(WAIT);
    expect(await c.messages().count()).toBe(0);
    await c.shot('paused');

    await pause.click();
    await c.messages(CHAT).nth(2).waitFor(WAIT);
    // Newest first.
    expect(await c.messages(CHAT).locator('pre').allTextContents()).toEqual(['three', 'two', 'one']);
    expect(await pause.textContent()).toBe('Pause');
    await c.shot('resumed');
  });

  test('keeps the list bounded: after 1,500 messages it shows the newest 1,000, and holds at most 1,000', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url, { channels: [CHAT] });
    await c.sub(CHAT).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    await t.sql`SELECT pg_notify(${CHAT}, 'message ' || i) FROM generate_series(1, 1500) AS i`;
    await c.page.locator('#count', { hasText: '1,500 received' }).waitFor(WAIT);
    expect(await c.messages().count()).toBe(1000);
    expect(await c.messages().first().getAttribute('data-seq')).toBe('1500');
    expect(await c.messages().last().getAttribute('data-seq')).toBe('501');
    await c.shot('bounded');

    await c.page.locator('#pause').click();
    await t.sql`SELECT pg_notify(${CHAT}, 'held ' || i) FROM generate_series(1, 1200) AS i`;
    await c.page.locator('#pause', { hasText: 'Resume (1000 held, 200 older discarded)' }).waitFor(WAIT);
    await c.page.locator('#pause').click();
    await c.messages().filter({ hasText: 'held 1200' }).waitFor(WAIT);
    expect(await c.messages().count()).toBe(1000);
    expect(await c.messages().last().getAttribute('data-seq')).toBe(String(1500 + 201));
  });

  test('is usable from the keyboard: labelled controls in reading order, Enter submits', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url);
    const focused = () =>
      c.page.evaluate(
        "(e => e.getAttribute('aria-label') || (e.labels && e.labels[0] && e.labels[0].textContent) || e.textContent)(document.activeElement)",
      );
    const order: unknown[] = [];
    for (let i = 0; i < 14; i++) {
      await c.page.keyboard.press('Tab');
      order.push(await focused());
    }
    expect(order).toEqual([
      'AsyncAPI document',
      'Transport',
      `Subscribe to "${ORDERS}"`,
      'Schema',
      `Subscribe to "${STOCK}"`,
      'Schema',
      'Subscribe by name (exact: spaces and case count)',
      'Subscribe',
      'Show all channels',
      'Pause',
      'Clear',
      'Channel',
      'Payload (JSON)',
      'Publish',
    ]);
    // Enter on a focused button subscribes; the new row's controls come next in the order.
    await c.page.getByRole('button', { name: `Subscribe to "${ORDERS}"` }).focus();
    await c.page.keyboard.press('Enter');
    await c.sub(ORDERS).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    await c
      .sub(ORDERS)
      .getByRole('button', { name: `Unsubscribe from "${ORDERS}"` })
      .focus();
    await c.page.keyboard.press('Tab');
    expect(await focused()).toBe('Filter (JSON, checked by the server)');
  });

  test('is readable on a phone: one column at 375 px, nothing wider than the screen', async () => {
    await using t = await startBridge(TOML);
    await using c = await browser.open(t.url, { channels: [ORDERS, CHAT], width: 375, height: 740 });
    await c.sub(CHAT).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    await c.sub(ORDERS).and(c.page.locator('[data-state="live"]')).waitFor(WAIT);
    await t.notify(ORDERS, JSON.stringify({ id: 9, status: 'shipped', total: 99.95 }));
    await c.messages(ORDERS).first().waitFor(WAIT);
    expect(await c.page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
    await c.shot('phone-top');
    await c.page.locator('#log').scrollIntoViewIfNeeded();
    await c.shot('phone-stream');
  });
});
