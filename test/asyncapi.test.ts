/**
 * The AsyncAPI 3.0 document (`GET /asyncapi.json`, `bun run asyncapi`): the official parser finds no error
 * (nor warning) in it for the shipped config and for configs with `[auth]`, raw channels and module schemas;
 * it says what /channels says; and the frames a real session exchanges are the messages it describes.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import { Parser } from '@asyncapi/parser';
import Ajv from 'ajv';
import packageJson from '../package.json' with { type: 'json' };
import { describeChannels } from '../src/channels/discovery.ts';
import { type Config, parseConfig } from '../src/config/load.ts';
import { describeAsyncApi } from '../src/describe/asyncapi.ts';
import { configFrom, startBridge, uniqueChannel } from './harness.ts';
import { connectMux } from './mux.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const ROOT = join(import.meta.dir, '..');
const load = async (path: string) => parseConfig(await Bun.file(path).text(), path);
const parser = new Parser();

/** The parser's errors and warnings, as `severity code path: message` lines (severity 0 error, 1 warning). */
async function problems(document: unknown): Promise<string[]> {
  const { diagnostics } = await parser.parse(document as Parameters<Parser['parse']>[0]);
  return diagnostics
    .filter((d) => d.severity <= 1)
    .map((d) => `${d.severity} ${d.code} ${d.path.join('.')}: ${d.message}`);
}

type Doc = {
  channels: Record<string, { address: string; messages: Record<string, { payload: unknown; contentType?: string }> }>;
  operations: Record<
    string,
    { action: string; channel: { $ref: string }; messages: { $ref: string }[]; security?: unknown[] }
  >;
  components?: { securitySchemes?: Record<string, unknown> };
};
const documentOf = (config: Config) => describeAsyncApi({ config, host: 'localhost:8080', version: '1.2.3' }) as Doc;

const DURABLE = `[channels.ledger]
description = "Payments"
durable = true
[channels.audit]
durable = true
retain = 500
retain_seconds = 3600
[channels.live]
`;

const CONFIGS: readonly (readonly [string, () => Promise<Config>])[] = [
  [
    'the shipped channels.toml (module, inline and raw channels, undeclared served raw)',
    () => load(join(ROOT, 'channels.toml')),
  ],
  [
    '[auth] with every way in, a public channel, module schemas, undeclared refused',
    () => load(join(ROOT, 'test/fixtures/asyncapi-auth.toml')),
  ],
  ['[auth] with an HS256 secret and no channels', () => configFrom('[auth]\nsecret_env = "JWT_SECRET"\n')],
  ['no channels at all: only the raw pattern and the multiplexed endpoint', () => configFrom('')],
  ['the module-schema fixture with undeclared refused', () => load(join(ROOT, 'test/fixtures/good.toml'))],
  ['durable channels, with default and set retention', () => configFrom(DURABLE)],
];

describe('the official AsyncAPI parser finds no error and no warning', () => {
  test.each(CONFIGS)('%s', async (_, config) => {
    expect(await problems(documentOf(await config()))).toEqual([]);
  });
});

describe('what the document says', () => {
  test('each declared channel is at its plain-socket path with the output schema of /channels, received', async () => {
    const config = await load(join(ROOT, 'test/fixtures/asyncapi-auth.toml'));
    const doc = documentOf(config);
    for (const channel of describeChannels(config).channels) {
      const entry = Object.values(doc.channels).find((c) => c.address === `/${encodeURIComponent(channel.name)}`);
      expect(entry?.messages['notification']?.payload).toEqual(
        channel.output ?? expect.objectContaining({ type: 'string' }),
      );
    }
    expect(doc.channels['orders']?.address).toBe('/orders');
    expect(doc.channels['Order_Events_eu']?.address).toBe('/Order%20Events%2Feu');
    expect(doc.operations['receive_orders']).toMatchObject({
      action: 'receive',
      channel: { $ref: '#/channels/orders' },
    });
  });

  test('a channel with publish = true gets a send operation whose message carries its input schema', async () => {
    const config = await load(join(ROOT, 'test/fixtures/asyncapi-auth.toml'));
    const doc = documentOf(config);
    const orders = describeChannels(config).channels.find((c) => c.name === 'orders');
    const { $schema: _, ...input } = orders?.input ?? {};
    expect(doc.operations['send_publish_orders']).toMatchObject({
      action: 'send',
      channel: { $ref: '#/channels/multiplexed' },
    });
    const frame = doc.channels['multiplexed']?.messages['publish_orders']?.payload;
    expect(frame).toMatchObject({ properties: { channel: { const: 'orders' }, payload: input } });
    expect(doc.channels['multiplexed']?.messages['publish_chat_room']?.payload).toMatchObject({
      properties: { channel: { const: 'chat room' }, payload: { type: 'string' } },
    });
    expect(doc.operations['send_publish_Order_Events_eu']).toBeUndefined();
  });

  test('security schemes with [auth]: bearer, the subprotocol, and the query only with query_token', async () => {
    const withQuery = documentOf(await load(join(ROOT, 'test/fixtures/asyncapi-auth.toml')));
    expect(Object.keys(withQuery.components?.securitySchemes ?? {})).toEqual(['bearer', 'subprotocol', 'queryToken']);
    expect(withQuery.operations['receive_orders']?.security).toHaveLength(2);
    expect(withQuery.operations['receive_Order_Events_eu']?.security).toBeUndefined(); // public
    const secret = documentOf(await configFrom('[auth]\nsecret_env = "JWT_SECRET"\n'));
    expect(Object.keys(secret.components?.securitySchemes ?? {})).toEqual(['bearer', 'subprotocol']);
    expect(documentOf(await configFrom('')).components).toBeUndefined();
  });

  test('a durable channel says so, and its description says how much it keeps', async () => {
    const doc = documentOf(await configFrom(DURABLE)) as Doc & {
      channels: Record<string, { description?: string; 'x-pgws-durable': boolean }>;
    };
    expect(doc.channels['ledger']).toMatchObject({
      description:
        'Payments\n\nDurable: the newest 10000 messages, none older than 86400 s, are kept in the database for resume.',
      'x-pgws-durable': true,
    });
    expect(doc.channels['audit']?.description).toBe(
      'Durable: the newest 500 messages, none older than 3600 s, are kept in the database for resume.',
    );
    expect(doc.channels['live']?.description).toBeUndefined();
    expect(doc.channels['live']?.['x-pgws-durable']).toBe(false);
  });

  test('the raw-channel pattern is there only while undeclared channels are served', async () => {
    expect(documentOf(await configFrom('')).channels['raw']).toMatchObject({ address: '/{channel}' });
    expect(documentOf(await load(join(ROOT, 'test/fixtures/good.toml'))).channels['raw']).toBeUndefined();
  });

  test('bun run asyncapi prints the document of a config', async () => {
    const config = join(ROOT, 'test/fixtures/asyncapi-auth.toml');
    const run = Bun.spawnSync([
      process.execPath,
      join(ROOT, 'src/cli/asyncapi.ts'),
      '--config',
      config,
      '--host',
      'h:1',
    ]);
    expect(run.exitCode).toBe(0);
    const expected = describeAsyncApi({ config: await load(config), host: 'h:1', version: packageJson.version });
    expect(JSON.parse(run.stdout.toString())).toEqual(expected);
  });
});

describe('GET /asyncapi.json', () => {
  test('serves the document with the host the client reached, and the console links to it', async () => {
    await using t = await startBridge('[channels.orders]\npublish = true\n');
    const response = await fetch(new URL('/asyncapi.json', t.url));
    expect(response.headers.get('content-type')).toBe('application/json');
    const document = (await response.json()) as { servers: { bridge: { host: string } } };
    expect(document.servers.bridge.host).toBe(t.url.host);
    expect(await problems(document)).toEqual([]);
    expect(await (await fetch(t.url)).text()).toContain('href="/asyncapi.json"');
  });

  test('the frames of a real session are the messages the document describes', async () => {
    const channel = uniqueChannel('described');
    await using t = await startBridge(`[channels."${channel}"]\npublish = true\nhistory = 5\n`);
    const doc = (await (await fetch(new URL('/asyncapi.json', t.url))).json()) as Doc;
    const messages = doc.channels['multiplexed']?.messages ?? {};
    const ajv = new Ajv({ strict: false });
    const problemsOf = (name: string, frame: unknown) =>
      ajv.validate(messages[name]?.payload ?? false, frame) ? [] : [`${name}: ${ajv.errorsText()}`];

    using mux = await connectMux(t.url);
    const sent = [
      { type: 'subscribe', id: 1, channel },
      {
        type: 'publish',
        id: 'p',
        channel,
        payload: 'hi',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      },
      { type: 'ping', id: 2 },
      { type: 'subscribe', id: 3, channel: '' },
      { type: 'unsubscribe', id: 4, channel },
    ];
    for (const frame of sent) expect(problemsOf(frame.type, frame)).toEqual([]);
    await mux.request(sent[0] as Record<string, unknown>);
    await mux.request(sent[1] as Record<string, unknown>);
    await mux.received(channel, 1);
    for (const frame of sent.slice(2)) await mux.request(frame);
    const types = new Set(mux.frames.map((frame) => frame.type));
    expect([...types].sort()).toEqual(['error', 'message', 'pong', 'published', 'ready', 'subscribed', 'unsubscribed']);
    expect(mux.frames.flatMap((frame) => problemsOf(frame.type, frame))).toEqual([]);
  });
});
