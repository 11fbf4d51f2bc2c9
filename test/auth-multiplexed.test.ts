/**
 * Authorization of multiplexed sockets (`pgws.v1` on `/`): docs/PROTOCOL.md "Authorization". A socket
 * without a token is anonymous (public channels only); a token comes with the upgrade (subprotocol
 * `bearer.T` or `Authorization`) or in an `auth` frame at any time; whatever does not verify closes
 * with 4401, because a browser sees close codes, not HTTP statuses.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { startBridge, uniqueChannel, within } from './harness.ts';
import { openMux } from './mux.ts';
import { rawClient } from './raw.ts';
import { authToml, hs256, nowSeconds, secretEnv } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const PUBLIC = 'news';
const TOML = `${authToml()}\n[channels.${PUBLIC}]\npublic = true\npublish = true\n`;
const subscribe = (channel: string) => ({ type: 'subscribe', channel });

describe('a multiplexed socket without a token', () => {
  test('is anonymous: ready with no subject, public channels readable, the rest forbidden', async () => {
    await using t = await startBridge(TOML, secretEnv);
    using socket = await openMux(t.url);
    expect(await socket.next()).toEqual({ type: 'ready', subject: null, expires: null });
    const secret = uniqueChannel();
    socket.send({ ...subscribe(secret), id: 1 });
    expect(await socket.next()).toMatchObject({ type: 'error', id: 1, channel: secret, code: 'forbidden' });
    socket.send(subscribe(PUBLIC));
    expect(await socket.next()).toMatchObject({ type: 'subscribed', channel: PUBLIC });
    // Public is read-only: publishing still needs a token with w.
    socket.send({ type: 'publish', id: 2, channel: PUBLIC, payload: 'hi' });
    expect(await socket.next()).toMatchObject({ type: 'error', id: 2, code: 'forbidden' });
  });
});

describe('a token offered at the upgrade', () => {
  test('as the subprotocol bearer.T is accepted, and the 101 selects exactly pgws.v1, never the token', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const channel = uniqueChannel();
    const exp = nowSeconds() + 600;
    const token = await hs256({ exp, channels: { [channel]: 'r' } });
    using socket = await openMux(t.url, { bearer: token });
    expect(socket.protocol).toBe('pgws.v1');
    expect(await socket.next()).toEqual({ type: 'ready', subject: 'alice', expires: exp });
    socket.send(subscribe(channel));
    await socket.next('subscribed');
    await t.notify(channel, 'granted');
    expect(await socket.next()).toMatchObject({ type: 'message', channel, payload: 'granted' });
    // The handshake as sent on the wire, with the token offered first (Bun would echo the first value).
    using raw = await rawClient('127.0.0.1', Number(t.url.port), '/', {
      'Sec-WebSocket-Protocol': `bearer.${token}, pgws.v1`,
    });
    expect(raw.response).toStartWith('HTTP/1.1 101');
    expect(raw.response).toMatch(/\r\nsec-websocket-protocol: pgws\.v1\r\n/i);
    expect(raw.response).not.toContain(token);
  });

  test('as Authorization: Bearer is accepted', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const channel = uniqueChannel();
    const token = await hs256({ sub: 'bob', channels: { [channel]: 'r' } });
    using socket = await openMux(t.url, { headers: { authorization: `Bearer ${token}` } });
    expect(await socket.next()).toMatchObject({ type: 'ready', subject: 'bob' });
    socket.send(subscribe(channel));
    expect(await socket.next()).toMatchObject({ type: 'subscribed', channel });
  });

  test.each([
    ['invalid', () => hs256({}, 'another-secret-that-is-long-enough-for-hs256'), 'invalid token'],
    ['expired', () => hs256({ exp: nowSeconds() - 60 }), 'token expired'],
  ])('that is %s opens the socket and closes it at once with 4401', async (_, make, reason) => {
    await using t = await startBridge(TOML, secretEnv);
    using socket = await openMux(t.url, { bearer: await make() });
    expect(await within(socket.closed, 5000, 'the 4401 close')).toMatchObject({ code: 4401, reason });
    expect(socket.texts).toEqual([]);
  });
});

describe('an auth frame', () => {
  test('turns an anonymous socket into the token subject with a new ready', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const channel = uniqueChannel();
    using socket = await openMux(t.url);
    await socket.next('ready');
    socket.send(subscribe(channel));
    expect(await socket.next()).toMatchObject({ type: 'error', code: 'forbidden' });
    const exp = nowSeconds() + 600;
    socket.send({ type: 'auth', token: await hs256({ exp, channels: { [channel]: 'r' } }) });
    expect(await socket.next()).toEqual({ type: 'ready', subject: 'alice', expires: exp });
    socket.send(subscribe(channel));
    expect(await socket.next()).toMatchObject({ type: 'subscribed', channel });
  });

  test.each([
    ['an invalid token', () => hs256({}, 'another-secret-that-is-long-enough-for-hs256'), 'invalid token'],
    ['an expired token', () => hs256({ exp: nowSeconds() - 60 }), 'token expired'],
    ['a token for another subject', () => hs256({ sub: 'mallory' }), 'token for another subject'],
  ])('with %s closes the socket with 4401', async (_, make, reason) => {
    await using t = await startBridge(TOML, secretEnv);
    using socket = await openMux(t.url, { bearer: await hs256() });
    await socket.next('ready');
    socket.send({ type: 'auth', token: await make() });
    expect(await within(socket.closed, 5000, 'the 4401 close')).toMatchObject({ code: 4401, reason });
  });

  test('is bad_request on a bridge without [auth], and the socket stays open', async () => {
    await using t = await startBridge();
    using socket = await openMux(t.url);
    await socket.next('ready');
    socket.send({ type: 'auth', token: await hs256() });
    expect(await socket.next()).toMatchObject({ type: 'error', code: 'bad_request' });
    socket.send({ type: 'ping', id: 'still here' });
    expect(await socket.next()).toEqual({ type: 'pong', id: 'still here' });
  });
});

describe('publishing with [auth]', () => {
  test('needs w on the channel and publish = true; r alone is forbidden', async () => {
    const declared = `[channels.board]\npublish = true\n[channels.readonly_board]\n`;
    await using t = await startBridge(`${authToml()}\n${declared}`, secretEnv);
    const token = await hs256({ channels: { board: 'r', readonly_board: 'rw' } });
    using socket = await openMux(t.url, { bearer: token });
    await socket.next('ready');
    const publish = (id: number, channel: string) => ({ type: 'publish', id, channel, payload: 'x' });
    socket.send(publish(1, 'board'));
    expect(await socket.next()).toMatchObject({ type: 'error', id: 1, code: 'forbidden' });
    socket.send(publish(2, 'readonly_board'));
    expect(await socket.next()).toMatchObject({ type: 'error', id: 2, code: 'forbidden' });
    socket.send({ type: 'auth', token: await hs256({ channels: { board: 'rw' } }) });
    await socket.next('ready');
    socket.send(subscribe('board'));
    await socket.next('subscribed');
    socket.send(publish(3, 'board'));
    // The message comes through the LISTEN connection, `published` through the query connection: either first.
    expect(await socket.answer(3)).toEqual({ type: 'published', id: 3, channel: 'board' });
    expect(await socket.received('board', 1)).toMatchObject([{ type: 'message', channel: 'board', payload: 'x' }]);
  });

  test('with a token granting only w publishes but cannot subscribe', async () => {
    await using t = await startBridge(`${authToml()}\n[channels.drop]\npublish = true\n`, secretEnv);
    using socket = await openMux(t.url, { bearer: await hs256({ channels: { drop: 'w' } }) });
    await socket.next('ready');
    socket.send({ type: 'subscribe', id: 1, channel: 'drop' });
    expect(await socket.next()).toMatchObject({ type: 'error', id: 1, code: 'forbidden' });
    socket.send({ type: 'publish', id: 2, channel: 'drop', payload: 'in' });
    expect(await socket.next()).toEqual({ type: 'published', id: 2, channel: 'drop' });
  });
});
