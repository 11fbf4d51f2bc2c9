/**
 * What authorization leaves behind: `pgws_auth_failures_total` by reason and the 4401 closes in
 * /metrics, each moved by exactly what happened; and no token or secret in any log line at any level
 * (debug included), in /metrics, in refusal bodies or in frames, in process and as a real process.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { connect, upgradeStatus } from './client.ts';
import { fakeClock } from './clock.ts';
import { databaseUrl, metric, startBridge, type TestBridge, uniqueChannel, within } from './harness.ts';
import { type MuxClient, openMux } from './mux.ts';
import { spawnServer } from './process.ts';
import { authToml, hs256, nowSeconds, SECRET, SECRET_ENV, secretEnv } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const BAD_SECRET = 'another-secret-that-is-long-enough-for-hs256';
const SERVER = 'allowed_origins = ["https://app.example"]';
const TOML = `${authToml()}\n[channels.news]\npublic = true\n[channels.board]\npublish = true\n`;
const REASONS = ['missing', 'invalid', 'expired', 'forbidden', 'origin'] as const;

const failures = async (base: URL) => {
  const counts: Record<string, number> = {};
  for (const reason of REASONS) counts[reason] = await metric(base, 'pgws_auth_failures_total', { reason });
  return counts;
};
const closeOf = async (socket: MuxClient) => (await within(socket.closed, 5000, 'a close')).code;

/** One thing a client does; resolves once the bridge has answered it. */
type Action = (t: TestBridge) => Promise<unknown>;
const anonymous = async (t: TestBridge, frame: object) => {
  using socket = await openMux(t.url);
  await socket.next('ready');
  socket.send(frame);
  return await socket.next('error');
};
const authFrame = async (t: TestBridge, token: string, first?: string) => {
  using socket = await openMux(t.url, first === undefined ? {} : { bearer: first });
  await socket.next('ready');
  socket.send({ type: 'auth', token });
  return await closeOf(socket);
};
const atUpgrade = async (t: TestBridge, token: string) => {
  using socket = await openMux(t.url, { bearer: token });
  return await closeOf(socket);
};
const plain = (t: TestBridge, headers: Record<string, string>, channel = uniqueChannel()) =>
  upgradeStatus(t.wsUrl(channel), headers);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('pgws_auth_failures_total', () => {
  test.each<[string, Action, Partial<Record<(typeof REASONS)[number], number>>]>([
    ['a plain upgrade without a token', (t) => plain(t, {}), { missing: 1 }],
    [
      'a plain upgrade with a bad signature',
      async (t) => plain(t, bearer(await hs256({}, BAD_SECRET))),
      { invalid: 1 },
    ],
    ['a plain upgrade with an expired token', async (t) => plain(t, bearer(await hs256({ exp: 1 }))), { expired: 1 }],
    ['a plain upgrade not granted', async (t) => plain(t, bearer(await hs256({ channels: {} }))), { forbidden: 1 }],
    ['a plain upgrade from an unlisted Origin', (t) => plain(t, { origin: 'https://evil.example' }), { origin: 1 }],
    [
      'a multiplexed upgrade from an unlisted Origin',
      (t) =>
        upgradeStatus(`ws://${t.url.host}/`, { origin: 'https://evil.example', 'sec-websocket-protocol': 'pgws.v1' }),
      { origin: 1 },
    ],
    ['a bad token at a multiplexed upgrade', async (t) => atUpgrade(t, await hs256({}, BAD_SECRET)), { invalid: 1 }],
    ['an expired token at a multiplexed upgrade', async (t) => atUpgrade(t, await hs256({ exp: 1 })), { expired: 1 }],
    ['a bad token in an auth frame', async (t) => authFrame(t, 'garbage'), { invalid: 1 }],
    ['an expired token in an auth frame', async (t) => authFrame(t, await hs256({ exp: 1 })), { expired: 1 }],
    [
      'an auth frame for another subject',
      async (t) => authFrame(t, await hs256({ sub: 'bob' }), await hs256()),
      { invalid: 1 },
    ],
    [
      'an anonymous subscribe to a private channel',
      (t) => anonymous(t, { type: 'subscribe', channel: uniqueChannel() }),
      { forbidden: 1 },
    ],
    [
      'an anonymous publish on a publish = true channel',
      (t) => anonymous(t, { type: 'publish', channel: 'board', payload: 'x' }),
      { forbidden: 1 },
    ],
    [
      'a publish on a channel without publish = true',
      (t) => anonymous(t, { type: 'publish', channel: 'news', payload: 'x' }),
      {},
    ],
    ['a public channel read without a token', async (t) => (await connect(t.wsUrl('news')))[Symbol.dispose](), {}],
  ])('moves by exactly one reason for %s', async (_, action, moved) => {
    await using t = await startBridge(TOML, { ...secretEnv, server: SERVER });
    const before = await failures(t.url);
    await action(t);
    const expected = Object.fromEntries(
      REASONS.map((reason) => [reason, (before[reason] ?? 0) + (moved[reason] ?? 0)]),
    );
    expect(await failures(t.url)).toEqual(expected);
  });

  test('counts the refusals a plain client sees under pgws_upgrades_refused_total too', async () => {
    await using t = await startBridge(TOML, { ...secretEnv, server: SERVER });
    await plain(t, {});
    await plain(t, {});
    await plain(t, bearer('garbage'));
    await plain(t, bearer(await hs256({ channels: {} })));
    await plain(t, { origin: 'https://evil.example' });
    const refused = (reason: string) => metric(t.url, 'pgws_upgrades_refused_total', { reason });
    expect(await refused('token_missing')).toBe(2);
    expect(await refused('token_invalid')).toBe(1);
    expect(await refused('forbidden')).toBe(1);
    expect(await refused('origin_not_allowed')).toBe(1);
  });
});

describe('pgws_closes_total with 4401', () => {
  test('counts token_invalid, token_subject and token_expired closes by their cause', async () => {
    const clock = fakeClock();
    await using t = await startBridge(TOML, { ...secretEnv, clock });
    expect(await atUpgrade(t, 'garbage')).toBe(4401);
    expect(await authFrame(t, 'garbage')).toBe(4401);
    expect(await authFrame(t, await hs256({ sub: 'bob' }), await hs256())).toBe(4401);
    expect(await atUpgrade(t, await hs256({ exp: nowSeconds() - 60 }))).toBe(4401);
    // Accepted, then closed by the expiry timer once the clock passes exp and the tolerance.
    const exp = clock.seconds() + 60;
    using expiring = await openMux(t.url, { bearer: await hs256({ exp }) });
    await expiring.next('ready');
    clock.advanceTo((exp + 5) * 1000);
    expect(await closeOf(expiring)).toBe(4401);
    const closes = (reason: string) => metric(t.url, 'pgws_closes_total', { reason });
    expect(await closes('token_invalid')).toBe(2);
    expect(await closes('token_subject')).toBe(1);
    expect(await closes('token_expired')).toBe(2);
  }, 20_000);
});

/**
 * Negative and positive cases against a bridge at `base`; returns every token used and every text the
 * clients were shown (refusal bodies, frames, close reasons), so the caller can look for leaks.
 */
async function exercise(base: URL): Promise<{ tokens: string[]; shown: string[] }> {
  const channel = uniqueChannel('logged');
  const good = await hs256({ channels: { [channel]: 'r', board: 'rw' } });
  const tokens = [
    good,
    await hs256({}, BAD_SECRET),
    await hs256({ exp: nowSeconds() - 60 }),
    await hs256({ nbf: nowSeconds() + 600 }),
    await hs256({ sub: 'bob' }),
    await hs256({ channels: {} }),
    await hs256({ channels: ['not', 'an', 'object'] }),
    await hs256({ padding: 'p'.repeat(20_000) }),
    `${good.slice(0, -4)}AAAA`,
  ];
  const shown: string[] = [];
  const ws = (path: string) => `ws://${base.host}/${path}`;
  for (const token of tokens) {
    // A channel none of them grants: every plain upgrade here is refused, so `upgradeStatus` never waits on a 101.
    const other = uniqueChannel('ungranted');
    for (const url of [ws(other), `${ws(other)}?token=${token}`]) {
      const answer = await upgradeStatus(url, token.length < 8000 ? bearer(token) : {}).catch((error) => ({
        body: String(error),
      }));
      shown.push(answer.body);
    }
    for (const options of [{ bearer: token }, {}]) {
      if (token.length > 8000 && 'bearer' in options) continue;
      using socket = await openMux(base, options);
      socket.send({ type: 'auth', token });
      socket.send({ type: 'subscribe', channel });
      socket.send({ type: 'ping', id: 'done' });
      const closed = await within(
        Promise.race([socket.next('pong').then(() => undefined), socket.closed]),
        5000,
        'a pong or a close',
      );
      shown.push(...socket.texts, closed?.reason ?? '');
    }
  }
  using reader = await connect(ws(channel), { headers: bearer(good) });
  shown.push(reader.socket.protocol);
  // Frames the parser refuses, each holding a token: the error must not quote it.
  using socket = await openMux(base, { bearer: good });
  for (const text of [
    `{"type":"auth","token":"${good}"`,
    `{"type":"auth","token":"${good}","id":{}}`,
    `{"type":"auth","token":["${good}"]}`,
  ]) {
    socket.socket.send(text);
    shown.push(JSON.stringify(await socket.next('error')));
  }
  shown.push(...socket.texts);
  shown.push(await (await fetch(new URL('/metrics', base))).text());
  return { tokens, shown };
}

/** The parts of a token that are secret-bearing: the whole, and its payload and signature segments. */
const secretsOf = (tokens: readonly string[]) => [
  SECRET,
  ...tokens.flatMap((token) => [
    token,
    ...token
      .split('.')
      .slice(1)
      .filter((part) => part.length >= 16),
  ]),
];

describe('no token or secret is written anywhere', () => {
  test('in process: no log line at debug level, no refusal body, frame, close reason or metric holds one', async () => {
    await using t = await startBridge(TOML, secretEnv);
    const { tokens, shown } = await exercise(t.url);
    const leaks = secretsOf(tokens);
    expect(t.logs.length).toBeGreaterThan(0);
    for (const text of [...t.logs, ...shown]) {
      expect(leaks.filter((leak) => text.includes(leak))).toEqual([]);
    }
  }, 30_000);

  test('as a process at LOG_LEVEL=debug: nothing on stdout or stderr holds one', async () => {
    await using server = await spawnServer({
      toml: TOML,
      env: { DATABASE_URL: databaseUrl(), LOG_LEVEL: 'debug', [SECRET_ENV]: SECRET },
    });
    const { tokens, shown } = await exercise(server.url);
    await server.signal('SIGTERM');
    const leaks = secretsOf(tokens);
    expect(server.lines.length).toBeGreaterThan(0);
    for (const text of [...server.lines, ...shown]) {
      expect(leaks.filter((leak) => text.includes(leak))).toEqual([]);
    }
  }, 60_000);
});
