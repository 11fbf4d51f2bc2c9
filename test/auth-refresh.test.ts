/**
 * Expiry and refresh of multiplexed sockets: a socket whose token is not refreshed closes with 4401 at
 * `exp` plus 5 s; an `auth` frame before then moves the deadline and answers `ready`; a refreshed token
 * that grants less takes away exactly what it no longer grants (`unsubscribed`, reason `forbidden`).
 *
 * Time is a fake clock the bridge reads for expiry (test/clock.ts): a test moves it to a deadline
 * instead of waiting for one, and a ping answered then proves the socket is still open.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { type FakeClock, fakeClock } from './clock.ts';
import { metric, startBridge, uniqueChannel, within } from './harness.ts';
import { type MuxClient, openMux } from './mux.ts';
import { authToml, type Claims, hs256, secretEnv } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const TOLERANCE_MS = 5000;
const deadlineOf = (exp: number) => exp * 1000 + TOLERANCE_MS;

/** A bridge with `[auth]` whose expiry runs on a fake clock. */
async function expiringBridge(toml = '') {
  const clock = fakeClock();
  const t = await startBridge(
    `${authToml()}
${toml}`,
    { ...secretEnv, clock },
  );
  return Object.assign(t, { clock });
}

/** A multiplexed socket opened with a token (subprotocol), past its `ready`. */
async function withToken(base: URL, claims: Claims): Promise<MuxClient> {
  const socket = await openMux(base, { bearer: await hs256(claims) });
  await socket.next('ready');
  return socket;
}

/** A minute from the clock's now, in `exp`'s Unix seconds. */
const soon = (clock: FakeClock) => clock.seconds() + 60;

/** Proves the socket still serves: a ping sent now is answered, after everything sent before it. */
async function stillServes(socket: MuxClient, id: string) {
  socket.send({ type: 'ping', id });
  expect(await socket.next('pong')).toEqual({ type: 'pong', id });
}

describe('a multiplexed socket whose token is not refreshed', () => {
  test('is closed with 4401 "token expired" at exp plus the tolerance, not a millisecond before', async () => {
    await using t = await expiringBridge();
    const exp = soon(t.clock);
    using socket = await withToken(t.url, { exp });
    t.clock.advanceTo(deadlineOf(exp) - 1);
    await stillServes(socket, 'just before the deadline');
    t.clock.advance(1);
    expect(await within(socket.closed, 5000, 'the expiry close')).toEqual({ code: 4401, reason: 'token expired' });
  });

  test('closed by the client before its deadline leaves no timer behind: nothing fires later', async () => {
    await using t = await expiringBridge();
    const exp = soon(t.clock);
    const socket = await withToken(t.url, { exp });
    expect(t.clock.pending).toBe(1);
    socket.socket.close(1000);
    await within(socket.closed, 5000, 'the client close');
    expect(t.clock.pending).toBe(0);
    t.clock.advanceTo(deadlineOf(exp) + 1000);
    using next = await withToken(t.url, {});
    await stillServes(next, 'after the deadline');
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'token_expired' })).toBe(0);
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'client' })).toBe(1);
    expect(t.logs.filter((line) => JSON.parse(line).level === 'error')).toEqual([]);
  });
});

describe('a refresh', () => {
  test('before expiry keeps the socket and its subscriptions past the old deadline, with a new ready', async () => {
    await using t = await expiringBridge();
    const channel = uniqueChannel();
    const old = soon(t.clock);
    using socket = await withToken(t.url, { exp: old, channels: { [channel]: 'r' } });
    await socket.subscribe(channel);
    const exp = old + 600;
    socket.send({ type: 'auth', token: await hs256({ exp, channels: { [channel]: 'r' } }) });
    expect(await socket.next('ready')).toEqual({ type: 'ready', subject: 'alice', expires: exp });
    t.clock.advanceTo(deadlineOf(old) + 1000);
    await t.notify(channel, 'after the old deadline');
    expect(await socket.next()).toMatchObject({ type: 'message', channel, payload: 'after the old deadline' });
    await stillServes(socket, 'open');
    t.clock.advanceTo(deadlineOf(exp));
    expect(await within(socket.closed, 5000, 'the close at the new deadline')).toMatchObject({ code: 4401 });
  });

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

  // An auth frame verified before the deadline moves it; once the clock has reached the deadline, the
  // socket's close is queued (closes are batched a macrotask later, see src/http/expiry.ts) and a refresh
  // landing then may still win. Either is correct there; a hang, a crash or a half-state is not.
  test.each([
    ['a second before the deadline', -1000],
    ['a millisecond before the deadline', -1],
  ])('sent %s keeps the socket past the old deadline', async (_, offset) => {
    await using t = await expiringBridge();
    const old = soon(t.clock);
    using socket = await withToken(t.url, { exp: old });
    t.clock.advanceTo(deadlineOf(old) + offset);
    socket.send({ type: 'auth', token: await hs256({ exp: old + 600 }) });
    await socket.next('ready');
    t.clock.advanceTo(deadlineOf(old) + 1000);
    await stillServes(socket, 'refresh won');
  });

  test.each([0, 1])(
    'racing expiry (auth frame sent %i ms after the deadline) ends in a refresh or a 4401, and the server keeps serving',
    async (offset) => {
      await using t = await expiringBridge();
      const old = soon(t.clock);
      using socket = await withToken(t.url, { exp: old });
      const fresh = await hs256({ exp: old + 600 });
      t.clock.advanceTo(deadlineOf(old) + offset);
      socket.send({ type: 'auth', token: fresh });
      const outcome = await within(
        Promise.race([socket.next('ready').then(() => 'refreshed' as const), socket.closed]),
        8000,
        'a ready or a close',
      );
      if (outcome === 'refreshed') await stillServes(socket, 'refresh won');
      else expect(outcome).toEqual({ code: 4401, reason: 'token expired' });
      using next = await withToken(t.url, {});
      await stillServes(next, 'server alive');
    },
  );
});
