import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import * as v from 'valibot';
import { backoffDelay } from '../src/base/backoff.ts';
import { channelFromPath, checkChannelName } from '../src/base/name.ts';
import { createCatalog } from '../src/channels/catalog.ts';
import { createCanary } from '../src/db/canary.ts';
import { type AdmissionInput, admit, FILE_RESERVE, fileLimitSockets } from '../src/http/admission.ts';
import { configFrom } from './harness.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

describe('channel names (no database)', () => {
  test.each([
    ['/orders', 'orders'],
    ['/Order%20Events', 'Order Events'],
    ['/a%2Fb', 'a/b'],
    ['/%22quoted%22%3B', '"quoted";'],
    ['/%F0%9F%9A%80', '🚀'],
  ])('%s is the channel %j', (path, name) => {
    expect(channelFromPath(path)).toEqual({ ok: true, name });
  });

  test.each([
    ['/', 'channel name is empty'],
    ['/a/b', 'the path must be a single segment: percent-encode "/" in a channel name as %2F'],
    ['/%ZZ', 'the path is not valid percent-encoded UTF-8'],
    ['/%C3', 'the path is not valid percent-encoded UTF-8'],
    ['/a%00b', 'channel name contains NUL'],
    ['/pgws.canary.1.x', 'channel names starting with "pgws.canary." are reserved for the bridge\'s probes'],
    [`/${'x'.repeat(64)}`, 'channel name is 64 bytes in UTF-8; PostgreSQL allows at most 63'],
    [`/${encodeURIComponent('é'.repeat(32))}`, 'channel name is 64 bytes in UTF-8; PostgreSQL allows at most 63'],
  ])('%s is refused: %s', (path, reason) => {
    expect(channelFromPath(path)).toEqual({ ok: false, reason });
  });

  test('63 bytes is the longest name, counted in UTF-8 bytes not characters', () => {
    expect(checkChannelName('x'.repeat(63)).ok).toBe(true);
    expect(checkChannelName(`${'é'.repeat(31)}x`).ok).toBe(true);
    expect(checkChannelName('\uD800').ok).toBe(false);
  });
});

describe('admission (no database)', () => {
  const base: AdmissionInput = {
    channel: { ok: true, name: 'orders' },
    allowed: () => true,
    stopping: false,
    databaseDown: false,
    connections: 0,
    maxSockets: 100,
    maxConnections: 10,
    listening: () => false,
    channels: 0,
    maxChannels: 2,
  };

  test.each([
    ['shutting down', { stopping: true }, 'shutting_down', 503],
    ['a bad name', { channel: { ok: false, reason: 'bad' } }, 'bad_name', 400],
    ['an undeclared channel in reject mode', { allowed: () => false }, 'unknown_channel', 404],
    ['the database down', { databaseDown: true }, 'database_down', 503],
    ['the connection cap', { connections: 10 }, 'connection_limit', 503],
    ['the open-file limit, below the connection cap', { connections: 5, maxSockets: 5 }, 'file_limit', 503],
    ['the channel cap', { channels: 2 }, 'channel_limit', 503],
  ] as const)('refuses on %s', (_, change, reason, status) => {
    expect(admit({ ...base, ...change })).toMatchObject({ ok: false, reason, status });
  });

  test('the sockets a file limit allows keep a reserve back, and no limit known means none', () => {
    expect(fileLimitSockets(20_000)).toBe(20_000 - FILE_RESERVE);
    expect(fileLimitSockets(10)).toBe(1);
    expect(fileLimitSockets(undefined)).toBe(Number.POSITIVE_INFINITY);
  });

  test('a bad name is reported even when the server is full', () => {
    expect(
      admit({ ...base, channel: { ok: false, reason: 'bad' }, connections: 10, databaseDown: true }),
    ).toMatchObject({ reason: 'bad_name' });
  });

  test('a channel already listened to passes the channel cap', () => {
    expect(admit({ ...base, channels: 2, listening: () => true })).toEqual({ ok: true, channel: 'orders' });
  });
});

describe('payload encoding (no database)', () => {
  test('raw channels pass the payload through untouched', async () => {
    const catalog = createCatalog(await configFrom(''));
    expect(catalog.encode('any', ' {"not": parsed} ')).toEqual({ ok: true, frame: ' {"not": parsed} ' });
  });

  test.each([
    ['not JSON', '{id:1}', 'json'],
    ['a wrong type', '{"id":"1"}', 'schema'],
    ['a missing required key', '{}', 'schema'],
  ])('rejects %s as data, never by throwing', async (_, payload, reason) => {
    const catalog = createCatalog(
      await configFrom(
        '[channels.c.schema]\ntype = "object"\nrequired = ["id"]\n[channels.c.schema.properties.id]\ntype = "integer"\n',
      ),
    );
    expect(catalog.encode('c', payload)).toMatchObject({ ok: false, reason });
  });

  test('a schema whose transform throws or returns nothing JSON can hold drops that payload only', async () => {
    const config = await configFrom('');
    const throwing = v.pipe(
      v.unknown(),
      v.transform(() => {
        throw new Error('boom');
      }),
    );
    const bigint = v.pipe(
      v.number(),
      v.transform((n: number) => BigInt(n)),
    );
    const nothing = v.pipe(
      v.unknown(),
      v.transform(() => undefined),
    );
    const channels = new Map(
      Object.entries({ throwing, bigint, nothing }).map(([name, schema]) => [
        name,
        {
          name,
          history: 0,
          publish: false,
          public: false,
          durable: false,
          retain: 1,
          retainSeconds: 1,
          schema,
          source: undefined,
        },
      ]),
    );
    const catalog = createCatalog({ ...config, channels });
    expect(catalog.encode('throwing', '1')).toMatchObject({
      ok: false,
      reason: 'schema',
      issues: [{ message: 'schema failed: boom' }],
    });
    expect(catalog.encode('bigint', '1')).toMatchObject({ ok: false, reason: 'schema' });
    expect(catalog.encode('nothing', '1')).toMatchObject({ ok: false, reason: 'schema' });
  });

  test('keeps at most three issues per rejected payload', async () => {
    const catalog = createCatalog(
      await configFrom('[channels.c.schema]\ntype = "array"\n[channels.c.schema.items]\ntype = "integer"\n'),
    );
    const encoded = catalog.encode('c', '["a","b","c","d","e"]');
    expect(encoded.ok ? [] : encoded.issues.map((issue) => issue.path)).toEqual(['0', '1', '2']);
  });
});

describe('backoff and canary (no database)', () => {
  test('backoff grows exponentially from the minimum, is capped, and is jittered', () => {
    expect(backoffDelay(0, 100, 10_000, () => 1)).toBe(100);
    expect(backoffDelay(3, 100, 10_000, () => 1)).toBe(800);
    expect(backoffDelay(20, 100, 10_000, () => 1)).toBe(10_000);
    expect(backoffDelay(20, 100, 10_000, () => 0)).toBe(100);
    expect(backoffDelay(1000, 100, 10_000, () => 0.5)).toBe(5050);
  });

  test('the canary is ready after a round trip and not after three missed intervals', async () => {
    let now = 0;
    const sent: string[] = [];
    const canary = createCanary({
      intervalMs: 1000,
      now: () => now,
      send: async (token) => {
        sent.push(token);
        return 0.25;
      },
    });
    expect(canary.status().ready).toBe(false);
    canary.probe();
    now = 7;
    canary.receive('someone else');
    canary.receive(sent[0] ?? '');
    await Promise.resolve();
    expect(canary.status()).toMatchObject({ ready: true, latencyMs: 7, queueUsage: 0.25, consecutiveFailures: 0 });
    for (let i = 0; i < 3; i++) {
      now += 1000;
      canary.probe();
    }
    now += 1000;
    expect(canary.status()).toMatchObject({ ready: false, consecutiveFailures: 2 });
  });
});
