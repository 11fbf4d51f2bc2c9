/**
 * Acceptance tests of `POST /channels/C/messages` (docs/PROTOCOL.md "Publishing over HTTP"): the body is the
 * payload; the rules are a `publish` frame's (`publish = true`, the `w` grant, the schema, the size, the rate per
 * subject or per address); success is 200 `{"type":"published","channel"}` and every refusal a status with
 * `{"code","message","issues"?}`.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { fakeClock } from './clock.ts';
import { streamEvents } from './events.ts';
import { metric, startBridge, startOwnDatabase, uniqueChannel, waitFor } from './harness.ts';
import { connectMux } from './mux.ts';
import { authToml, hs256, secretEnv } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const STOCK = 'stock';
const RAW = 'notes';
const CLOSED = 'closed';
const TOML = `
[channels.${STOCK}]
publish = true
[channels.${STOCK}.schema]
type = "object"
required = ["sku", "quantity"]
[channels.${STOCK}.schema.properties.quantity]
type = "integer"
minimum = 0
[channels.${STOCK}.schema.properties.warehouse]
type = "string"
default = "main"
[channels.${RAW}]
publish = true
[channels.${CLOSED}]
`;

const post = (base: URL, channel: string, body: string, headers: Record<string, string> = {}) =>
  fetch(new URL(`/channels/${encodeURIComponent(channel)}/messages`, base), { method: 'POST', body, headers });
const json = { 'content-type': 'application/json' };

describe('POST /channels/C/messages', () => {
  test('answers 200 {"type":"published","channel"} once PostgreSQL has it, and every subscriber gets the parsed output', async () => {
    await using t = await startBridge(TOML);
    using stream = await streamEvents(t.url, `channel=${STOCK}`);
    await stream.next('subscribed');
    using mux = await connectMux(t.url);
    await mux.subscribe(STOCK);
    const answer = await post(t.url, STOCK, '{"sku":"AB-12","quantity":3}', json);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ type: 'published', channel: STOCK });
    const expected = { sku: 'AB-12', quantity: 3, warehouse: 'main' };
    expect((await stream.next('message')).data).toEqual({ channel: STOCK, seq: 1, payload: expected });
    expect(await mux.next('message')).toMatchObject({ payload: expected });
    expect(await metric(t.url, 'pgws_publishes_total', { outcome: 'published', transport: 'http' })).toBe(1);
  });

  test('a body that fails the schema is 400 invalid_payload with its issues; one that is not JSON is 400 bad_request', async () => {
    await using t = await startBridge(TOML);
    const invalid = await post(t.url, STOCK, '{"sku":"AB-12","quantity":-1}', json);
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({
      code: 'invalid_payload',
      message: expect.any(String),
      issues: [{ path: 'quantity', message: expect.any(String) }],
    });
    const garbage = await post(t.url, STOCK, '{"sku":', json);
    expect(garbage.status).toBe(400);
    expect(await garbage.json()).toMatchObject({ code: 'bad_request' });
    // A body that would close the frame early is just invalid JSON, never a second field.
    const spliced = await post(t.url, STOCK, '1,"channel":"other"', json);
    expect(spliced.status).toBe(400);
    expect(await metric(t.url, 'pgws_publishes_total', { outcome: 'invalid', transport: 'http' })).toBe(3);
  });

  test('on a raw channel the body is the payload text, byte for byte; sent as application/json it must be a JSON string', async () => {
    await using t = await startBridge(TOML);
    using stream = await streamEvents(t.url, `channel=${RAW}`);
    await stream.next('subscribed');
    const text = '  {"not": "parsed"}\n  ünïcode ';
    expect((await post(t.url, RAW, text, { 'content-type': 'text/plain' })).status).toBe(200);
    expect((await post(t.url, RAW, JSON.stringify('as a JSON string'), json)).status).toBe(200);
    const notString = await post(t.url, RAW, '{"a":1}', json);
    expect(notString.status).toBe(400);
    expect(await notString.json()).toMatchObject({ code: 'invalid_payload' });
    await stream.until(() => stream.messages(RAW).length === 2, 5000, 'two messages');
    expect(stream.messages(RAW).map((m) => m['payload'])).toEqual([text, 'as a JSON string']);
  });

  test.each([
    ['a declared channel without publish = true', CLOSED],
    ['an undeclared channel', 'anything'],
  ])('on %s is 403 forbidden', async (_, channel) => {
    await using t = await startBridge(TOML);
    const answer = await post(t.url, channel, 'x');
    expect(answer.status).toBe(403);
    expect(await answer.json()).toMatchObject({ code: 'forbidden', channel });
  });

  test('a body over max_message_bytes is 413 payload_too_large, with a Content-Length or without', async () => {
    await using t = await startBridge(TOML, { server: 'max_message_bytes = 1024' });
    const answer = await post(t.url, RAW, 'x'.repeat(1025));
    expect(answer.status).toBe(413);
    expect(await answer.json()).toMatchObject({ code: 'payload_too_large' });
    expect((await post(t.url, RAW, 'x'.repeat(1024))).status).toBe(200);
    // Without a Content-Length (chunked), the body is read only as far as the limit.
    const chunked = (size: number) =>
      fetch(new URL(`/channels/${RAW}/messages`, t.url), {
        method: 'POST',
        body: new ReadableStream({
          start(controller) {
            for (let sent = 0; sent < size; sent += 512)
              controller.enqueue(new TextEncoder().encode('y'.repeat(Math.min(512, size - sent))));
            controller.close();
          },
        }),
      });
    expect((await chunked(4096)).status).toBe(413);
    expect((await chunked(1000)).status).toBe(200);
  });

  test('a GET on the path is 405, and OPTIONS answers a CORS preflight', async () => {
    await using t = await startBridge(TOML);
    const path = new URL(`/channels/${RAW}/messages`, t.url);
    expect((await fetch(path)).status).toBe(405);
    const preflight = await fetch(path, { method: 'OPTIONS', headers: { origin: 'https://app.example' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
  });
});

describe('POST /channels/C/messages and publish_rate', () => {
  test('is counted per client address without a token: past the rate 429 rate_limited with Retry-After, dropped', async () => {
    const clock = fakeClock();
    await using t = await startBridge(TOML, { server: 'publish_rate = 2', clock });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(t.url, RAW, `n${i}`)).status);
    expect(statuses).toEqual([200, 200, 429]);
    const limited = await post(t.url, RAW, 'again');
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(await limited.json()).toMatchObject({ code: 'rate_limited' });
    clock.advance(500);
    expect((await post(t.url, RAW, 'refilled')).status).toBe(200);
  });

  test('is counted per subject with a token: one subject at its rate does not hold another back', async () => {
    const clock = fakeClock();
    await using t = await startBridge(`${authToml()}${TOML}`, { ...secretEnv, server: 'publish_rate = 1', clock });
    const alice = { authorization: `Bearer ${await hs256({ sub: 'alice', channels: { '*': 'w' } })}` };
    const bob = { authorization: `Bearer ${await hs256({ sub: 'bob', channels: { '*': 'w' } })}` };
    expect((await post(t.url, RAW, 'a1', alice)).status).toBe(200);
    expect((await post(t.url, RAW, 'a2', alice)).status).toBe(429);
    expect((await post(t.url, RAW, 'b1', bob)).status).toBe(200);
  });
});

describe('POST /channels/C/messages with [auth]', () => {
  test('needs a token (401 token_missing, 401 token_invalid) that grants w (else 403 forbidden)', async () => {
    await using t = await startBridge(`${authToml()}${TOML}`, secretEnv);
    expect((await post(t.url, RAW, 'x')).status).toBe(401);
    const invalid = await post(t.url, RAW, 'x', { authorization: 'Bearer not-a-jwt' });
    expect(invalid.status).toBe(401);
    expect(await invalid.json()).toMatchObject({ code: 'token_invalid' });
    const reader = { authorization: `Bearer ${await hs256({ channels: { [RAW]: 'r' } })}` };
    expect((await post(t.url, RAW, 'x', reader)).status).toBe(403);
    const writer = { authorization: `Bearer ${await hs256({ channels: { [RAW]: 'w' } })}` };
    expect((await post(t.url, RAW, 'x', writer)).status).toBe(200);
  });
});

describe('POST /channels/C/messages with the database down', () => {
  test('is 503 unavailable with Retry-After, and publishes again once the database is back', async () => {
    await using db = await startOwnDatabase();
    const channel = uniqueChannel('down');
    await using t = await startBridge(`[channels."${channel}"]\npublish = true\n`, {
      databaseUrl: db.url,
      database: 'reconnect_min_ms = 20\nreconnect_max_ms = 200',
    });
    await db.stop();
    await waitFor(async () => (await fetch(new URL('/healthz', t.url))).status === 503, 5000, 'health to turn 503');
    const down = await post(t.url, channel, 'x');
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBe('1');
    expect(await down.json()).toMatchObject({ code: 'unavailable' });
    await db.start();
    await waitFor(async () => (await post(t.url, channel, 'y')).status === 200, 15_000, 'a publish to go through');
  });
});
