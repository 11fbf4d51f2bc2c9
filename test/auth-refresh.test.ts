/**
 * Expiry and refresh of multiplexed sockets: a socket whose token is not refreshed closes with 4401 at
 * `exp` plus 5 s; an `auth` frame before then moves the deadline and answers `ready`; a refreshed token
 * that grants less takes away exactly what it no longer grants (`unsubscribed`, reason `forbidden`).
 *
 * To keep these fast, a token may carry an `exp` 3 s in the past: inside the 5 s tolerance it verifies,
 * and the socket's deadline, (exp + 5) s, is 1–2 s away.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { metric, startBridge, uniqueChannel, within } from './harness.ts';
import { type MuxClient, openMux } from './mux.ts';
import { authToml, type Claims, hs256, nowSeconds, secretEnv } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const TOLERANCE_MS = 5000;
const nearlyExpired = () => nowSeconds() - 3;
const deadlineOf = (exp: number) => exp * 1000 + TOLERANCE_MS;
const untilTime = (at: number) => Bun.sleep(Math.max(0, at - Date.now()));

/** A multiplexed socket opened with a token (subprotocol), past its `ready`. */
async function withToken(base: URL, claims: Claims): Promise<MuxClient> {
  const socket = await openMux(base, { bearer: await hs256(claims) });
  await socket.next('ready');
  return socket;
}

/** Proves the socket still serves: a ping sent now is answered, after everything sent before it. */
async function stillServes(socket: MuxClient, id: string) {
  socket.send({ type: 'ping', id });
  expect(await socket.next('pong')).toEqual({ type: 'pong', id });
}

describe('a multiplexed socket whose token is not refreshed', () => {
  test('is closed with 4401 "token expired" at exp plus the tolerance', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const exp = nearlyExpired();
    using socket = await withToken(t.url, { exp });
    const closed = await within(
      socket.closed.then((c) => ({ ...c, at: Date.now() })),
      5000,
      'the expiry close',
    );
    expect(closed).toMatchObject({ code: 4401, reason: 'token expired' });
    expect(closed.at).toBeGreaterThanOrEqual(deadlineOf(exp) - 50);
    expect(closed.at).toBeLessThan(deadlineOf(exp) + 1500);
  }, 20_000);
  test('closed by the client before its deadline leaves no timer behind: nothing fires later', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const exp = nearlyExpired();
    const socket = await withToken(t.url, { exp });
    socket.socket.close(1000);
    await within(socket.closed, 5000, 'the client close');
    await untilTime(deadlineOf(exp) + 300);
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'token_expired' })).toBe(0);
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'client' })).toBe(1);
    using next = await withToken(t.url, {});
    await stillServes(next, 'after the deadline');
    expect(t.logs.filter((line) => JSON.parse(line).level === 'error')).toEqual([]);
  }, 20_000);
});

describe('a refresh', () => {
  test('before expiry keeps the socket and its subscriptions past the old deadline, with a new ready', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const channel = uniqueChannel();
    const old = nearlyExpired();
    using socket = await withToken(t.url, { exp: old, channels: { [channel]: 'r' } });
    socket.send({ type: 'subscribe', channel });
    await socket.next('subscribed');
    const exp = nowSeconds() + 600;
    socket.send({ type: 'auth', token: await hs256({ exp, channels: { [channel]: 'r' } }) });
    expect(await socket.next()).toEqual({ type: 'ready', subject: 'alice', expires: exp });
    await untilTime(deadlineOf(old) + 500);
    await t.notify(channel, 'after the old deadline');
    expect(await socket.next()).toMatchObject({ type: 'message', channel, payload: 'after the old deadline' });
    await stillServes(socket, 'open');
  }, 20_000);

  test('that grants less unsubscribes exactly what it no longer grants, with reason forbidden', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const kept = uniqueChannel('kept');
    const patterned = uniqueChannel('pat_x');
    const dropped = uniqueChannel('dropped');
    const droppedToo = uniqueChannel('pat_y');
    const all = [kept, patterned, dropped, droppedToo];
    using socket = await withToken(t.url, { channels: { 'kept_*': 'r', 'pat_*': 'r', 'dropped_*': 'rw' } });
    for (const channel of all) socket.send({ type: 'subscribe', channel });
    for (const _ of all) await socket.next('subscribed');
    // The new token keeps `kept` by name and the `pat_x` channel by a narrower pattern.
    const narrower = { [kept]: 'r', 'pat_x*': 'r' };
    socket.send({ type: 'auth', token: await hs256({ channels: narrower }) });
    expect(await socket.next()).toMatchObject({ type: 'ready', subject: 'alice' });
    const gone = [await socket.next(), await socket.next()];
    expect(gone).toContainEqual({ type: 'unsubscribed', channel: dropped, reason: 'forbidden' });
    expect(gone).toContainEqual({ type: 'unsubscribed', channel: droppedToo, reason: 'forbidden' });
    // Nothing more for the dropped ones: a later message on each kept channel is the next frame.
    for (const channel of all) await t.notify(channel, `after the refresh on ${channel}`);
    const next = [await socket.next(), await socket.next()].map((frame) => frame['channel']);
    expect(next.sort()).toEqual([kept, patterned].sort());
    await stillServes(socket, 'narrowed');
    expect(socket.texts.filter((text) => text.includes(dropped) && text.includes('"message"'))).toEqual([]);
  });

  test('to a token that grants nothing keeps only public channels, and the socket stays open', async () => {
    await using t = await startBridge(`${authToml()}\n[channels.news]\npublic = true\n`, secretEnv);
    const channel = uniqueChannel();
    using socket = await withToken(t.url, { channels: { [channel]: 'r' } });
    for (const name of ['news', channel]) {
      socket.send({ type: 'subscribe', channel: name });
      await socket.next('subscribed');
    }
    socket.send({ type: 'auth', token: await hs256({ channels: {} }) });
    await socket.next('ready');
    expect(await socket.next()).toEqual({ type: 'unsubscribed', channel, reason: 'forbidden' });
    await t.notify('news', 'still public');
    expect(await socket.next()).toMatchObject({ type: 'message', channel: 'news', payload: 'still public' });
    socket.send({ type: 'subscribe', id: 1, channel });
    expect(await socket.next()).toMatchObject({ type: 'error', id: 1, code: 'forbidden' });
  });

  // The auth frame lands in the last moments before (or just after) the deadline. By the implementation,
  // the refresh wins when it is verified before the timer fires (a new ready, the socket stays), and the
  // timer wins otherwise (4401). Either is correct; a hang, a crash or a half-state is not.
  test.each([-150, -60, -20, 0, 20])(
    'racing expiry (auth frame %i ms from the deadline) ends in a refresh or a 4401, and the server keeps serving',
    async (offset) => {
      await using t = await startBridge(authToml(), secretEnv);
      const old = nearlyExpired();
      using socket = await withToken(t.url, { exp: old });
      const fresh = await hs256({ exp: nowSeconds() + 600 });
      await untilTime(deadlineOf(old) + offset);
      socket.send({ type: 'auth', token: fresh });
      const outcome = await within(
        Promise.race([socket.next('ready', 8000).then(() => 'refreshed' as const), socket.closed]),
        8000,
        'a ready or a close',
      );
      if (outcome === 'refreshed') {
        await untilTime(deadlineOf(old) + 300);
        await stillServes(socket, 'refresh won');
      } else {
        expect(outcome).toMatchObject({ code: 4401, reason: 'token expired' });
      }
      using next = await withToken(t.url, {});
      await stillServes(next, 'server alive');
    },
    20_000,
  );
});
