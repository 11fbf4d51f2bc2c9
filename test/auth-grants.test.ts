/**
 * What a token's `channels` claim grants, through real subscribes and publishes: a name or a pattern
 * where `*` matches any run of characters (and every other character, regex metacharacters included,
 * matches itself), mapped to `r`, `w` or `rw`. Anything not granted is denied.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { startBridge } from './harness.ts';
import { openMux } from './mux.ts';
import { authToml, hs256, secretEnv } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

/** Subscribes to `channel` with a token granting `claim`; the answer's type (subscribed or error code). */
async function readAnswer(claim: Record<string, string>, channel: string): Promise<string> {
  await using t = await startBridge(authToml(), secretEnv);
  using socket = await openMux(t.url, { bearer: await hs256({ channels: claim }) });
  await socket.next('ready');
  socket.send({ type: 'subscribe', channel });
  const answer = await socket.next();
  return answer.type === 'error' ? String(answer['code']) : answer.type;
}

describe('a channels pattern', () => {
  test.each([
    ['chat*', 'chat', 'subscribed'],
    ['chat*', 'chatroom', 'subscribed'],
    ['chat*', 'xchat', 'forbidden'],
    ['chat*', 'Chat', 'forbidden'],
    ['*', 'anything_at_all', 'subscribed'],
    ['*', 'Ünïcode ✓', 'subscribed'],
    ['*room', 'chatroom', 'subscribed'],
    ['*room', 'roomy', 'forbidden'],
    ['a*b*c', 'a_1_b_2_c', 'subscribed'],
    ['a*b*c', 'a_1_c', 'forbidden'],
    ['orders', 'orders', 'subscribed'],
    ['orders', 'orders2', 'forbidden'],
    ['orders', 'my_orders', 'forbidden'],
    ['a.b', 'a.b', 'subscribed'],
    ['a.b', 'axb', 'forbidden'],
    ['a+b', 'a+b', 'subscribed'],
    ['a+b', 'aab', 'forbidden'],
    ['a.*', 'a.b', 'subscribed'],
    ['a.*', 'ab', 'forbidden'],
    ['(x|y)', 'x', 'forbidden'],
    ['(x|y)', '(x|y)', 'subscribed'],
    ['[ab]?', 'a', 'forbidden'],
    ['[ab]?', '[ab]?', 'subscribed'],
    ['^$\\', '^$\\', 'subscribed'],
    ['x{2}', 'xx', 'forbidden'],
  ])('%p on channel %p answers %p', async (pattern, channel, expected) => {
    expect(await readAnswer({ [pattern]: 'r' }, channel)).toBe(expected);
  });

  test('entries add up: a name granting w does not let a socket read, a pattern beside it granting r does', async () => {
    expect(await readAnswer({ board: 'w', 'bo*': 'r' }, 'board')).toBe('subscribed');
    expect(await readAnswer({ board: 'w' }, 'board')).toBe('forbidden');
  });
});

describe('a grant mode', () => {
  const TOML = `${authToml()}\n[channels.board]\npublish = true\n`;
  test.each([
    ['r', 'subscribed', 'forbidden'],
    ['w', 'forbidden', 'published'],
    ['rw', 'subscribed', 'published'],
  ])('%p lets a socket subscribe: %p, publish: %p', async (mode, read, write) => {
    await using t = await startBridge(TOML, secretEnv);
    using socket = await openMux(t.url, { bearer: await hs256({ channels: { board: mode } }) });
    await socket.next('ready');
    socket.send({ type: 'subscribe', id: 'r', channel: 'board' });
    const subscribed = await socket.next();
    socket.send({ type: 'publish', id: 'w', channel: 'board', payload: 'x' });
    const published = await socket.next(write === 'published' ? 'published' : 'error');
    expect(subscribed.type === 'error' ? subscribed['code'] : subscribed.type).toBe(read);
    expect(published.type === 'error' ? published['code'] : published.type).toBe(write);
  });
});
