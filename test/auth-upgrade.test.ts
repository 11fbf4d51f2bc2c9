/**
 * What the bridge reads off an upgrade request before any token is checked: where the token comes
 * from when it is offered in several places at once (Authorization beats the `bearer.` subprotocol,
 * which beats `?token=`; only the first found is used, valid or not), and the Origin allow-list that
 * stops cross-site WebSocket hijacking in both modes.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { connect, upgradeStatus } from './client.ts';
import { startBridge, uniqueChannel, within } from './harness.ts';
import { openMux } from './mux.ts';
import { rawClient } from './raw.ts';
import { authToml, hs256, secretEnv } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const BAD_SECRET = 'another-secret-that-is-long-enough-for-hs256';
const QUERY_ON = authToml('query_token = true');

describe('a token offered in several places at once, multiplexed', () => {
  test.each([
    ['Authorization', 'the subprotocol', ['header', 'subprotocol']],
    ['the subprotocol', '?token=', ['subprotocol', 'query']],
    ['Authorization', '?token=', ['header', 'query']],
  ])('%s wins over %s', async (_winner, _loser, places) => {
    await using t = await startBridge(QUERY_ON, secretEnv);
    const token = (sub: string) => (places.includes(sub) ? hs256({ sub }) : undefined);
    const [header, subprotocol, query] = await Promise.all(['header', 'subprotocol', 'query'].map(token));
    using socket = await openMux(t.url, {
      ...(header === undefined ? {} : { headers: { authorization: `Bearer ${header}` } }),
      ...(subprotocol === undefined ? {} : { bearer: subprotocol }),
      ...(query === undefined ? {} : { query: `?token=${query}` }),
    });
    expect(await socket.next()).toMatchObject({ type: 'ready', subject: places[0] });
  });

  test.each([
    ['Authorization', { headers: { authorization: 'Bearer WINNER' }, bearer: 'LOSER' }, ''],
    ['the subprotocol', { bearer: 'WINNER' }, '?token=LOSER'],
  ])('an invalid token in %s is not rescued by a valid one further down: 4401', async (_, where, query) => {
    await using t = await startBridge(QUERY_ON, secretEnv);
    const [winner, loser] = [await hs256({}, BAD_SECRET), await hs256()];
    const swap = (text: string) => text.replace('WINNER', winner).replace('LOSER', loser);
    const options = {
      ...('headers' in where ? { headers: { authorization: swap(where.headers.authorization) } } : {}),
      bearer: swap(where.bearer),
      query: swap(query),
    };
    using socket = await openMux(t.url, options);
    expect(await within(socket.closed, 5000, 'the 4401 close')).toMatchObject({ code: 4401, reason: 'invalid token' });
  });
});

describe('a token offered in several places at once, plain', () => {
  test('Authorization wins over ?token=, whichever of them grants the channel', async () => {
    await using t = await startBridge(QUERY_ON, secretEnv);
    const channel = uniqueChannel();
    const [grants, grantsNothing] = [await hs256({ channels: { [channel]: 'r' } }), await hs256({ channels: {} })];
    using socket = await connect(`${t.wsUrl(channel)}?token=${grantsNothing}`, {
      headers: { authorization: `Bearer ${grants}` },
    });
    await t.notify(channel, 'by the header');
    expect(await socket.next()).toBe('by the header');
    const refused = await upgradeStatus(`${t.wsUrl(channel)}?token=${grants}`, {
      authorization: `Bearer ${grantsNothing}`,
    });
    expect(refused.status).toBe(403);
  });

  test('a bearer. subprotocol is not a token source for a plain socket: 401', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const channel = uniqueChannel();
    const token = await hs256({ channels: { [channel]: 'r' } });
    using raw = await rawClient('127.0.0.1', Number(t.url.port), `/${channel}`, {
      'Sec-WebSocket-Protocol': `bearer.${token}`,
    });
    expect(raw.response).toStartWith('HTTP/1.1 401');
  });
  // The contract's reason for answering pgws.v1 explicitly: Bun echoes the first offered value, which
  // may be a token. A plain upgrade that succeeds (a public channel, or a token in the header) must not
  // send it back either.
  test.each([
    ['on a public channel', 'news', false],
    ['authorized by the Authorization header', 'granted', true],
  ])('a plain upgrade %s never echoes an offered bearer. value in its 101', async (_, channel, withHeader) => {
    await using t = await startBridge(`${authToml()}\n[channels.news]\npublic = true\n`, secretEnv);
    const token = await hs256({ channels: { granted: 'r' } });
    using raw = await rawClient('127.0.0.1', Number(t.url.port), `/${channel}`, {
      'Sec-WebSocket-Protocol': `bearer.${token}`,
      ...(withHeader ? { Authorization: `Bearer ${token}` } : {}),
    });
    expect(raw.response).toStartWith('HTTP/1.1 101');
    expect(raw.response).not.toContain(token);
  });
});

describe('[server] allowed_origins', () => {
  const TOML = `${authToml()}\n[channels.news]\npublic = true\n`;
  const SERVER = 'allowed_origins = ["https://app.example", "http://localhost:5173"]';
  const statusOf = async (port: number, path: string, headers: Record<string, string>) => {
    using raw = await rawClient('127.0.0.1', port, path, headers);
    return Number(raw.response.split(' ')[1]);
  };

  test.each([
    ['plain', '/news', {}],
    ['multiplexed', '/', { 'Sec-WebSocket-Protocol': 'pgws.v1' }],
  ])('%s: a listed Origin and no Origin pass, an unlisted one is 403', async (_, path, headers) => {
    await using t = await startBridge(TOML, { ...secretEnv, server: SERVER });
    const port = Number(t.url.port);
    expect(await statusOf(port, path, { ...headers, Origin: 'https://app.example' })).toBe(101);
    expect(await statusOf(port, path, { ...headers, Origin: 'http://localhost:5173' })).toBe(101);
    expect(await statusOf(port, path, headers)).toBe(101);
    for (const origin of ['https://evil.example', 'https://app.example.evil.example', 'http://app.example', 'null']) {
      expect(await statusOf(port, path, { ...headers, Origin: origin })).toBe(403);
    }
    const refused = await upgradeStatus(t.wsUrl(path.slice(1)), { ...headers, origin: 'https://evil.example' });
    expect(refused).toMatchObject({ status: 403, body: 'this Origin is not allowed\n' });
  });

  test('is checked before the token: an unlisted Origin with a valid token is still 403', async () => {
    await using t = await startBridge(TOML, { ...secretEnv, server: SERVER });
    const channel = uniqueChannel();
    const headers = { authorization: `Bearer ${await hs256({ channels: { [channel]: 'r' } })}` };
    expect((await upgradeStatus(t.wsUrl(channel), { ...headers, origin: 'https://evil.example' })).status).toBe(403);
    using socket = await connect(t.wsUrl(channel), { headers: { ...headers, origin: 'https://app.example' } });
    expect(socket.socket.readyState).toBe(WebSocket.OPEN);
  });

  test('empty (the default) lets any Origin through', async () => {
    await using t = await startBridge(TOML, secretEnv);
    using socket = await connect(t.wsUrl('news'), { headers: { origin: 'https://anywhere.example' } });
    expect(socket.socket.readyState).toBe(WebSocket.OPEN);
  });
});
