import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { ChannelLimitError } from '../src/base/errors.ts';
import { silentLogger } from '../src/base/log.ts';
import { createListener, type Listener, type ListenerState } from '../src/db/listener.ts';
import { databaseUrl, uniqueChannel, waitFor } from './harness.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

let listener: Listener;
const received: Array<[string, string]> = [];
const states: ListenerState[] = [];
const probe = uniqueChannel('probe');

beforeAll(async () => {
  listener = createListener({
    url: databaseUrl(),
    reconnectMinMs: 20,
    reconnectMaxMs: 200,
    probeChannel: probe,
    log: silentLogger,
  });
  listener.start({
    notification: (channel, payload) => received.push([channel, payload]),
    state: (state) => states.push(state),
  });
  await waitFor(() => listener.state === 'up', 10_000, 'the listener to connect');
});
afterAll(() => listener.stop());

test('LISTENs when a channel gets its first subscriber and UNLISTENs when its last one leaves', async () => {
  const channel = uniqueChannel('refs');
  await listener.acquire(channel);
  await listener.acquire(channel);
  expect(await listener.listening()).toContain(channel);
  listener.release(channel);
  expect(await listener.listening()).toContain(channel);
  listener.release(channel);
  expect(await listener.listening()).not.toContain(channel);
  expect(listener.has(channel)).toBe(false);
});

test('always listens on its private probe channel and counts it as no subscriber channel', async () => {
  expect(await listener.listening()).toContain(probe);
  expect(listener.has(probe)).toBe(false);
});

test('refuses to LISTEN one channel past maxChannels, but not one already held nor a private one', async () => {
  const limited = createListener({
    url: databaseUrl(),
    reconnectMinMs: 20,
    reconnectMaxMs: 200,
    probeChannel: uniqueChannel('probe'),
    log: silentLogger,
    isPrivate: (channel) => channel.startsWith('private'),
    maxChannels: 1,
  });
  limited.start({ notification: () => {}, state: () => {} });
  try {
    await waitFor(() => limited.state === 'up', 10_000, 'the limited listener to connect');
    const [first, second] = [uniqueChannel('limit'), uniqueChannel('limit')];
    await limited.acquire(first);
    await expect(limited.acquire(second)).rejects.toBeInstanceOf(ChannelLimitError);
    expect(limited.has(second)).toBe(false);
    await limited.acquire(first);
    await limited.acquire(uniqueChannel('private'));
    expect(limited.channelCount).toBe(1);
    limited.release(first);
    limited.release(first);
    await limited.acquire(second);
    expect(await limited.listening()).toContain(second);
  } finally {
    await limited.stop();
  }
});

test('quotes channel names as identifiers, so SQL in a name is only a name', async () => {
  const channel = `x"; SELECT pg_sleep(10); --`;
  await listener.acquire(channel);
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  await sql`SELECT pg_notify(${channel}, 'literal')`;
  await sql.end();
  await waitFor(() => received.some(([c, p]) => c === channel && p === 'literal'), 5000, 'the notification');
  listener.release(channel);
});

test('a subscriber re-acquiring right after the last release is LISTENing again', async () => {
  const channel = uniqueChannel('flip');
  await listener.acquire(channel);
  listener.release(channel);
  await listener.acquire(channel);
  expect(await listener.listening()).toContain(channel);
  listener.release(channel);
});
