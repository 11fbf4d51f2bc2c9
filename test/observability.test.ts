import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { createLogger } from '../src/base/log.ts';
import { describeChannels } from '../src/channels/discovery.ts';
import { connect } from './client.ts';
import { configFrom, metric, startBridge, type TestBridge, uniqueChannel } from './harness.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

// Schema modules resolve their imports (valibot) from where they live, so the fixture stays in the repo.
const ORDER_MODULE = join(import.meta.dir, 'fixtures', 'schemas', 'order-observed.ts');

const CHANNELS = `
[channels.checked]
description = "inline schema"
[channels.checked.schema]
type = "object"
required = ["id"]
additionalProperties = false
[channels.checked.schema.properties.id]
type = "integer"
minimum = 1
[channels.checked.schema.properties.note]
type = "string"
maxLength = 5

[channels.orders]
description = "module schema"
schema = "${ORDER_MODULE}#Order"

[channels.plain]
`;

describe('GET /metrics', () => {
  let t: TestBridge;
  beforeAll(async () => {
    t = await startBridge(CHANNELS, { database: 'canary_interval_ms = 200' });
  });
  afterAll(() => t.stop());

  test('counts received, delivered and invalid notifications per channel, and subscribers', async () => {
    const channel = 'checked';
    using a = await connect(t.wsUrl(channel));
    using b = await connect(t.wsUrl(channel));
    const before = {
      received: await metric(t.url, 'pgws_notifications_received_total', { channel }),
      delivered: await metric(t.url, 'pgws_frames_delivered_total', { channel }),
      json: await metric(t.url, 'pgws_notifications_invalid_total', { channel, reason: 'json' }),
      schema: await metric(t.url, 'pgws_notifications_invalid_total', { channel, reason: 'schema' }),
    };
    for (const payload of ['{"id":1}', 'not json', '{"id":0}', '{"id":2,"extra":true}', '{"id":3}'])
      await t.notify(channel, payload);
    await a.received(2);
    await b.received(2);
    expect(await metric(t.url, 'pgws_notifications_received_total', { channel })).toBe(before.received + 5);
    expect(await metric(t.url, 'pgws_frames_delivered_total', { channel })).toBe(before.delivered + 4);
    expect(await metric(t.url, 'pgws_notifications_invalid_total', { channel, reason: 'json' })).toBe(before.json + 1);
    expect(await metric(t.url, 'pgws_notifications_invalid_total', { channel, reason: 'schema' })).toBe(
      before.schema + 2,
    );
    expect(await metric(t.url, 'pgws_channel_subscribers', { channel })).toBe(2);
    expect(await metric(t.url, 'pgws_connections')).toBe(2);
  });

  test('counts closes by reason and refused upgrades by reason', async () => {
    using client = await connect(t.wsUrl(uniqueChannel()));
    const before = await metric(t.url, 'pgws_closes_total', { reason: 'receive_only' });
    client.socket.send('SELECT 1');
    await client.closed;
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'receive_only' })).toBe(before + 1);
    const refusedBefore = await metric(t.url, 'pgws_upgrades_refused_total', { reason: 'bad_name' });
    await fetch(`http://${t.url.host}/${'x'.repeat(64)}`, {
      headers: {
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
      },
    });
    expect(await metric(t.url, 'pgws_upgrades_refused_total', { reason: 'bad_name' })).toBe(refusedBefore + 1);
  });

  test('exposes the listener state, canary latency and the notification queue usage', async () => {
    const text = await (await fetch(new URL('/metrics', t.url))).text();
    expect(text).toContain('# TYPE pgws_notifications_received_total counter');
    expect(await metric(t.url, 'pgws_listener_up')).toBe(1);
    expect(text).toMatch(/^pgws_notification_queue_usage \d/m);
    expect(text).toMatch(/^pgws_canary_latency_seconds \d/m);
  });

  test('forgets the counters of an undeclared channel when its last subscriber leaves', async () => {
    const channel = uniqueChannel('gone');
    {
      using client = await connect(t.wsUrl(channel));
      await t.notify(channel, 'x');
      await client.next();
      expect(await metric(t.url, 'pgws_notifications_received_total', { channel })).toBe(1);
      client.socket.close();
      await client.closed;
    }
    const text = await (await fetch(new URL('/metrics', t.url))).text();
    expect(text).not.toContain(channel);
  });
});

describe('GET /channels', () => {
  let t: TestBridge;
  beforeAll(async () => {
    t = await startBridge(CHANNELS);
  });
  afterAll(() => t.stop());

  const document = async () =>
    (await (await fetch(new URL('/channels', t.url))).json()) as {
      unknown_channels: string;
      channels: Array<{
        name: string;
        description: string | null;
        schema: Record<string, unknown> | null;
        publish: boolean;
        history: number;
        durable: boolean;
      }>;
    };

  test('lists every declared channel with its description and whether unknown channels are allowed', async () => {
    const body = await document();
    expect(body.unknown_channels).toBe('raw');
    expect(body.channels.map((c) => [c.name, c.description, c.schema === null])).toEqual([
      ['checked', 'inline schema', false],
      ['orders', 'module schema', false],
      ['plain', null, true],
    ]);
  });

  test('says per channel whether clients may publish, how much history is kept and whether it is public', async () => {
    const config = await configFrom(
      '[channels.chat]\npublish = true\nhistory = 50\n[channels.feed]\npublic = true\n[channels.quiet]\n',
    );
    expect(
      describeChannels(config).channels.map(({ name, publish, history, public: open }) => ({
        name,
        publish,
        history,
        open,
      })),
    ).toEqual([
      { name: 'chat', publish: true, history: 50, open: false },
      { name: 'feed', publish: false, history: 0, open: true },
      { name: 'quiet', publish: false, history: 0, open: false },
    ]);
    expect((await document()).channels.every((c) => c.publish === false && c.history === 0)).toBe(true);
  });

  test('says per channel whether it is durable, and on durable ones how many messages and seconds it keeps', async () => {
    const config = await configFrom(
      '[channels.ledger]\ndurable = true\n[channels.audit]\ndurable = true\nretain = 500\nretain_seconds = 3600\n[channels.live]\n',
    );
    const published = JSON.parse(JSON.stringify(describeChannels(config).channels)) as Array<Record<string, unknown>>;
    expect(
      published.map(({ name, durable, retain, retain_seconds }) => ({ name, durable, retain, retain_seconds })),
    ).toEqual([
      { name: 'ledger', durable: true, retain: 10_000, retain_seconds: 86_400 },
      { name: 'audit', durable: true, retain: 500, retain_seconds: 3600 },
      { name: 'live', durable: false, retain: undefined, retain_seconds: undefined },
    ]);
    // A plain channel has no retention to speak of: the keys are absent, not null.
    expect(Object.keys(published[2] ?? {})).not.toContain('retain');
    const served = (await document()).channels;
    expect(served.every((c) => c.durable === false && !('retain' in c) && !('retain_seconds' in c))).toBe(true);
  });

  test.each([
    ['checked', { id: 5, note: 'hi' }, { id: 0 }],
    ['checked', { id: 5 }, { id: 5, extra: 1 }],
    ['orders', { id: 3, status: 'paid', tags: ['a'] }, { id: 3, status: 'lost' }],
    ['orders', { id: 3 }, { status: 'new' }],
  ])(
    'the published schema of %s accepts what the channel delivers and rejects what it drops',
    async (name, valid, invalid) => {
      const schema = (await document()).channels.find((c) => c.name === name)?.schema;
      const validate = new Ajv2020({ strict: false }).compile(schema ?? {});
      expect(validate(valid)).toBe(true);
      expect(validate(invalid)).toBe(false);
      // The same payloads through the running bridge: the valid one is delivered, the invalid one is not.
      using client = await connect(t.wsUrl(name));
      await t.notify(name, JSON.stringify(invalid));
      await t.notify(name, JSON.stringify(valid));
      expect(JSON.parse(await client.next())).toMatchObject(valid);
    },
  );
});

describe('structured logs', () => {
  test('one JSON object per line with time, level, scope and message', () => {
    const lines: string[] = [];
    const log = createLogger({
      level: 'info',
      write: (line) => lines.push(line),
      now: () => new Date('2026-01-02T03:04:05.678Z'),
    });
    log.child('listener').warn('database connection lost', { retries: 2 });
    expect(JSON.parse(lines[0] ?? '')).toEqual({
      time: '2026-01-02T03:04:05.678Z',
      level: 'warn',
      scope: 'listener',
      message: 'database connection lost',
      retries: 2,
    });
  });

  test('LOG_LEVEL drops lines below the chosen level', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', write: (line) => lines.push(line) });
    log.debug('no');
    log.info('no');
    log.warn('yes');
    log.error('yes');
    expect(lines.map((line) => JSON.parse(line).message)).toEqual(['yes', 'yes']);
  });

  test('a terminal gets a readable line instead of JSON', () => {
    const lines: string[] = [];
    createLogger({
      pretty: true,
      write: (line) => lines.push(line),
      now: () => new Date('2026-01-02T03:04:05.678Z'),
    }).info('ready', { port: 8080 });
    expect(lines).toEqual(['03:04:05.678 INFO  [bridge] ready {"port":8080}']);
  });

  test('an invalid payload is logged with its channel and issue paths but only a short prefix of the payload', async () => {
    await using t = await startBridge(CHANNELS);
    using client = await connect(t.wsUrl('checked'));
    const secret = `{"id":"x","note":"${'s'.repeat(500)}"}`;
    await t.notify('checked', secret);
    await t.notify('checked', '{"id":9}');
    await client.next();
    const line = t.logs.map((l) => JSON.parse(l)).find((entry) => entry.message === 'invalid payload dropped');
    expect(line).toMatchObject({ level: 'warn', scope: 'payload', channel: 'checked', reason: 'schema' });
    expect(line.issues.map((issue: { path: string }) => issue.path)).toContain('id');
    expect(line.prefix.length).toBeLessThanOrEqual(64);
    expect(JSON.stringify(line)).not.toContain('s'.repeat(100));
  });
});
