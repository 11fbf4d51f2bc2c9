/**
 * Authorization of plain sockets (`ws://host/<channel>`, one channel, receive-only): docs/PROTOCOL.md
 * "Authorization". A refused upgrade is an HTTP status (401 no or bad token, 403 not granted); a socket
 * whose token expires is closed with 4401 at `exp` plus the 5 s tolerance.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { connect, upgradeStatus } from './client.ts';
import { fakeClock } from './clock.ts';
import { startBridge, uniqueChannel, within } from './harness.ts';
import { authToml, hs256, nowSeconds, secretEnv } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const PUBLIC = 'news';
const TOML = `${authToml()}\n[channels.${PUBLIC}]\npublic = true\n`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('a plain upgrade with [auth]', () => {
  test('without a token, on a channel that is not public, is refused with 401', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const refused = await upgradeStatus(t.wsUrl(uniqueChannel()));
    expect(refused).toMatchObject({ status: 401, body: 'a token is required for this channel\n' });
  });

  test.each([
    ['a token signed with another secret', () => hs256({}, 'another-secret-that-is-long-enough-for-hs256')],
    ['an expired token', () => hs256({ exp: nowSeconds() - 60 })],
    ['text that is not a JWT', async () => 'not-a-jwt'],
  ])('with %s is refused with 401', async (_, make) => {
    await using t = await startBridge(TOML, secretEnv);
    const channel = uniqueChannel();
    const token = await make();
    const refused = await upgradeStatus(t.wsUrl(channel), bearer(token));
    expect(refused.status).toBe(401);
    expect(refused.body).not.toContain(token);
  });

  test('with a token that does not grant the channel is refused with 403', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const channel = uniqueChannel();
    const token = await hs256({ channels: { [`${channel}_other`]: 'rw' } });
    expect(await upgradeStatus(t.wsUrl(channel), bearer(token))).toMatchObject({
      status: 403,
      body: `the token does not grant reading "${channel}"\n`,
    });
  });

  test('with a token that grants only w is refused with 403: reading needs r', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const channel = uniqueChannel();
    const token = await hs256({ channels: { [channel]: 'w' } });
    expect((await upgradeStatus(t.wsUrl(channel), bearer(token))).status).toBe(403);
  });

  test('with Authorization: Bearer and a granting token receives the channel', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const channel = uniqueChannel();
    using socket = await connect(t.wsUrl(channel), {
      headers: bearer(await hs256({ channels: { [channel]: 'r' } })),
    });
    await t.notify(channel, 'granted');
    expect(await socket.next()).toBe('granted');
  });

  test('on a public channel needs no token', async () => {
    await using t = await startBridge(TOML, secretEnv);
    using socket = await connect(t.wsUrl(PUBLIC));
    await t.notify(PUBLIC, 'for everyone');
    expect(await socket.next()).toBe('for everyone');
  });

  test('does not read ?token= by default: the token in the URL is ignored and the upgrade is 401', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const channel = uniqueChannel();
    const token = await hs256({ channels: { [channel]: 'r' } });
    const refused = await upgradeStatus(`${t.wsUrl(channel)}?token=${token}`);
    expect(refused).toMatchObject({ status: 401, body: 'a token is required for this channel\n' });
  });

  test('reads ?token= when [auth] query_token = true', async () => {
    await using t = await startBridge(`${authToml('query_token = true')}`, secretEnv);
    const channel = uniqueChannel();
    const token = await hs256({ channels: { [channel]: 'r' } });
    using socket = await connect(`${t.wsUrl(channel)}?token=${token}`);
    await t.notify(channel, 'from the query');
    expect(await socket.next()).toBe('from the query');
    expect((await upgradeStatus(`${t.wsUrl(uniqueChannel())}?token=${token}`)).status).toBe(403);
  });
});

describe('a plain socket whose token expires', () => {
  test('is closed with 4401 "token expired" at exp plus the 5 s tolerance, not before', async () => {
    const clock = fakeClock();
    await using t = await startBridge(TOML, { ...secretEnv, clock });
    const channel = uniqueChannel();
    const exp = clock.seconds() + 60;
    using socket = await connect(t.wsUrl(channel), {
      headers: bearer(await hs256({ exp, channels: { [channel]: 'r' } })),
    });
    // Still served after exp itself, to the last millisecond of the tolerance.
    for (const at of [exp * 1000 + 1, (exp + 5) * 1000 - 1]) {
      clock.advanceTo(at);
      await t.notify(channel, `at ${at}`);
      expect(await socket.next()).toBe(`at ${at}`);
    }
    clock.advance(1);
    expect(await within(socket.closed, 5000, 'the 4401 close at exp + 5 s')).toEqual({
      code: 4401,
      reason: 'token expired',
    });
  });
});
