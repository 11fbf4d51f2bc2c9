/**
 * Acceptance tests of who may open `GET /events`, and what a refused one sees (docs/PROTOCOL.md "Server-Sent
 * Events"): refusals before the stream starts are plain HTTP with `{"code","message"}`; the token comes as
 * `Authorization: Bearer` (or `?token=` with `query_token`); `allowed_origins` and CORS; a stream counts toward
 * `max_connections`; a token's expiry ends the stream.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { fakeClock } from './clock.ts';
import { type EventsClient, openEvents, type Refused, streamEvents } from './events.ts';
import { metric, startBridge, uniqueChannel } from './harness.ts';
import { authToml, hs256, nowSeconds, secretEnv } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const refused = async (base: URL, query: string, headers: Record<string, string> = {}) => {
  const answer = await openEvents(base, query, { headers });
  if (answer.status === 200) {
    (answer as EventsClient).close();
    throw new Error(`GET /events?${query} was not refused`);
  }
  return answer as Refused;
};

describe('GET /events refused before the stream starts', () => {
  test.each([
    ['no channel', 400, 'bad_request', () => ''],
    ['a channel name over 63 bytes', 400, 'bad_channel', () => `channel=${'x'.repeat(64)}`],
    ['an empty channel name', 400, 'bad_channel', () => 'channel='],
    ['a filter that is not JSON', 400, 'bad_request', () => `channel=c&filter.c=${encodeURIComponent('{nope')}`],
    [
      'a filter with an unknown operator',
      400,
      'bad_request',
      () => `channel=c&filter.c=${encodeURIComponent('{"a":{"above":1}}')}`,
    ],
    ['the same channel twice', 400, 'already_subscribed', () => 'channel=c&channel=c'],
    [
      'an undeclared channel under unknown_channels = "reject"',
      404,
      'unknown_channel',
      () => `channel=${uniqueChannel()}`,
    ],
  ])('%s: %d {"code":"%s","message"}', async (_, status, code, query) => {
    await using t = await startBridge('[channels.c]\n[channels.c.schema]\ntype = "object"\n', {
      server: 'unknown_channels = "reject"',
    });
    const answer = await refused(t.url, query());
    expect(answer.status).toBe(status);
    expect(answer.body).toMatchObject({ code, message: expect.any(String) });
    expect(answer.headers.get('content-type')).toStartWith('application/json');
    expect(await metric(t.url, 'pgws_upgrades_refused_total', { reason: code, transport: 'sse' })).toBe(1);
  });

  test('a stream over max_connections is 503 connection_limit with Retry-After, as an upgrade is: streams count toward it', async () => {
    const channel = uniqueChannel();
    await using t = await startBridge('', { server: 'max_connections = 1' });
    using first = await streamEvents(t.url, `channel=${channel}`);
    await first.next('subscribed');
    const answer = await refused(t.url, `channel=${channel}`);
    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ code: 'connection_limit' });
    expect(answer.headers.get('retry-after')).toBe('1');
  });
});

describe('GET /events with [auth]', () => {
  const PUBLIC = 'news';
  const TOML = `${authToml()}\n[channels.${PUBLIC}]\npublic = true\n`;

  test('without a token, on a channel that is not public, is 401 token_missing; a public one needs none', async () => {
    await using t = await startBridge(TOML, secretEnv);
    expect(await refused(t.url, `channel=${uniqueChannel()}`)).toMatchObject({
      status: 401,
      body: { code: 'token_missing' },
    });
    using open = await streamEvents(t.url, `channel=${PUBLIC}`);
    expect((await open.next('subscribed')).data).toMatchObject({ channel: PUBLIC });
  });

  test.each([
    ['a token signed with another secret', () => hs256({}, 'another-secret-that-is-long-enough-for-hs256')],
    ['an expired token', () => hs256({ exp: nowSeconds() - 60 })],
  ])('with %s is 401 token_invalid, and the token is never echoed', async (_, make) => {
    await using t = await startBridge(TOML, secretEnv);
    const token = await make();
    const answer = await refused(t.url, `channel=${PUBLIC}`, bearer(token));
    expect(answer).toMatchObject({ status: 401, body: { code: 'token_invalid' } });
    expect(JSON.stringify(answer.body)).not.toContain(token);
  });

  test('with a token that does not grant reading one of the channels is 403 forbidden, naming that channel', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const [granted, other] = [uniqueChannel(), uniqueChannel()];
    const token = await hs256({ channels: { [granted]: 'r', [other]: 'w' } });
    const answer = await refused(t.url, `channel=${granted}&channel=${other}`, bearer(token));
    expect(answer).toMatchObject({ status: 403, body: { code: 'forbidden', channel: other } });
    // Nothing of the refused stream is left behind: the granted channel's subscription was released.
    expect(await metric(t.url, 'pgws_subscriptions', { mode: 'multiplexed' })).toBe(0);
    expect(await metric(t.url, 'pgws_connections', { transport: 'sse' })).toBe(0);
  });

  test('reads the token from Authorization: Bearer, and from ?token= only with query_token = true', async () => {
    const channel = uniqueChannel();
    const token = await hs256({ channels: { [channel]: 'r' } });
    await using t = await startBridge(TOML, secretEnv);
    using stream = await streamEvents(t.url, `channel=${channel}`, { headers: bearer(token) });
    await t.notify(channel, 'granted');
    expect((await stream.next('message')).data).toMatchObject({ payload: 'granted' });
    expect((await refused(t.url, `channel=${channel}&token=${token}`)).status).toBe(401);
    await using q = await startBridge(authToml('query_token = true'), secretEnv);
    using fromQuery = await streamEvents(q.url, `channel=${channel}&token=${token}`);
    expect((await fromQuery.next('subscribed')).data).toMatchObject({ channel });
  });

  test('ends the stream when its token expires (exp plus the 5 s tolerance), with a comment naming why', async () => {
    const clock = fakeClock();
    const channel = uniqueChannel();
    await using t = await startBridge(TOML, { ...secretEnv, clock });
    const exp = clock.seconds() + 60;
    const stream = await streamEvents(t.url, `channel=${channel}`, {
      headers: bearer(await hs256({ exp, channels: { [channel]: 'r' } })),
    });
    await stream.next('subscribed');
    clock.advanceTo((exp + 5) * 1000 - 1);
    await t.notify(channel, 'still served');
    await stream.next('message');
    clock.advance(1);
    await stream.ended;
    expect(stream.text()).toEndWith(': closed 4401 token_expired: token expired\n\n');
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'token_expired', transport: 'sse' })).toBe(1);
  });
});

describe('GET /events and origins', () => {
  test('an Origin not in allowed_origins is 403 origin_not_allowed, without CORS headers', async () => {
    await using t = await startBridge('', { server: 'allowed_origins = ["https://app.example"]' });
    const answer = await refused(t.url, 'channel=c', { origin: 'https://evil.example' });
    expect(answer).toMatchObject({ status: 403, body: { code: 'origin_not_allowed' } });
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
  });

  test.each([
    ['a listed origin', 'allowed_origins = ["https://app.example"]'],
    ['any origin when the list is empty', ''],
  ])('%s gets Access-Control-Allow-Origin, so EventSource works from another origin', async (_, server) => {
    await using t = await startBridge('', { server });
    const origin = 'https://app.example';
    using stream = await streamEvents(t.url, `channel=${uniqueChannel()}`, { headers: { origin } });
    expect(stream.headers.get('access-control-allow-origin')).toBe(origin);
    const preflight = await fetch(new URL('/events', t.url), {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-headers': 'authorization, last-event-id' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(origin);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('last-event-id');
  });
});
