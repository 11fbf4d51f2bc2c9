import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { ConfigError } from '../src/base/errors.ts';
import { parseConfig } from '../src/config/load.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const fixture = (name: string) => join(import.meta.dir, 'fixtures', name);
const load = (name: string) => parseConfig(readFileSync(fixture(name), 'utf8'), fixture(name));

describe('a config that fails', () => {
  test.each([
    ['syntax.toml', 'syntax.toml:3:16: Invalid TOML document: control characters are not allowed in strings'],
    ['top-level.toml', 'top-level.toml: sever: unknown key (allowed here: server, database, auth, channels)'],
    [
      'unknown-key.toml',
      'unknown-key.toml: server.max_conections: unknown key (allowed here: host, port, unknown_channels, max_connections, max_channels, max_message_bytes, max_payload_bytes, slow_consumer_bytes, idle_timeout, workers, worker_backlog_bytes, publish_rate, max_subscriptions, allowed_origins)',
    ],
    [
      'channel-key.toml',
      'channel-key.toml: channels.orders.descripton: unknown key (allowed here: description, history, publish, public, schema, durable, retain, retain_seconds)',
    ],
    ['wrong-type.toml', 'wrong-type.toml: server.port: Invalid type: Expected number but received "eighty"'],
    ['out-of-range.toml', 'out-of-range.toml: server.port: Invalid value: Expected <=65535 but received 70000'],
    [
      'backlog-small.toml',
      'backlog-small.toml: server.worker_backlog_bytes: Invalid value: Expected >=65536 but received 4096',
    ],
    [
      'bad-mode.toml',
      'bad-mode.toml: server.unknown_channels: Invalid type: Expected ("raw" | "reject") but received "drop"',
    ],
    [
      'bad-ingest.toml',
      'bad-ingest.toml: database.ingest: Invalid type: Expected ("notify" | "replication") but received "wal"',
    ],
    ['backoff.toml', 'backoff.toml: database.reconnect_min_ms: must not exceed reconnect_max_ms (1000)'],
    [
      'long-name.toml',
      'long-name.toml: channels.this_channel_name_is_far_too_long_for_postgresql_identifiers_xyz: channel name is 64 bytes in UTF-8; PostgreSQL allows at most 63',
    ],
    [
      'unknown-keyword.toml',
      'unknown-keyword.toml: channels.orders.schema.properties.id: unknown keyword "frobnicate"',
    ],
    [
      'bad-pattern.toml',
      'bad-pattern.toml: channels."Order Events".schema: "pattern" is not a valid regular expression: Invalid regular expression: missing )',
    ],
    [
      'bad-format.toml',
      'bad-format.toml: channels.orders.schema: "format" must be one of date-time, date, email, uuid, uri',
    ],
    [
      'bad-default.toml',
      'bad-default.toml: channels.orders.schema.properties.n: "default" does not match its own schema: Invalid type: Expected integer but received "three"',
    ],
    [
      'missing-module.toml',
      `missing-module.toml: channels.orders.schema: cannot load module "./schemas/nope.ts": Cannot find module '${fixture('schemas/nope.ts')}'`,
    ],
    [
      'missing-export.toml',
      'missing-export.toml: channels.orders.schema: module "./schemas/order.ts" has no export "Nope"',
    ],
    [
      'not-a-schema.toml',
      'not-a-schema.toml: channels.orders.schema: export "notSchema" of "./schemas/order.ts" is not a valibot schema',
    ],
    [
      'durable-history.toml',
      'durable-history.toml: channels.orders.history: a durable channel keeps its messages in the database; use retain and retain_seconds instead of history',
    ],
    [
      'retain-plain.toml',
      'retain-plain.toml: channels.orders.retain: applies only to durable channels (set durable = true)',
    ],
    [
      'retain-zero.toml',
      'retain-zero.toml: channels.orders.retain_seconds: Invalid value: Expected >=1 but received 0',
    ],
  ])('%s is refused with a message naming the file and the place', async (name, message) => {
    const error = await load(name).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(message);
  });
});

describe('a config that loads', () => {
  test('an empty file gives every documented default', async () => {
    const config = await parseConfig('', 'channels.toml');
    expect(config.server).toEqual({
      host: '0.0.0.0',
      port: 8080,
      unknownChannels: 'raw',
      maxConnections: 50_000,
      maxChannels: 1000,
      maxMessageBytes: 65_536,
      maxPayloadBytes: 1024 * 1024,
      slowConsumerBytes: 1024 * 1024,
      idleTimeout: 60,
      workers: 1,
      workerBacklogBytes: 64 * 1024 * 1024,
      publishRate: 20,
      maxSubscriptions: 100,
      allowedOrigins: [],
    });
    expect(config.database).toEqual({
      url: undefined,
      reconnectMinMs: 100,
      reconnectMaxMs: 10_000,
      canaryIntervalMs: 5000,
      largePayloadTtl: 60,
      ingest: 'notify',
    });
    expect(config.channels.size).toBe(0);
  });

  test('quoted channel names, inline schemas and module schemas with transforms', async () => {
    const config = await load('good.toml');
    expect(config.server.unknownChannels).toBe('reject');
    expect([...config.channels.keys()]).toEqual(['orders', 'Order Events', 'plain']);
    const orders = config.channels.get('orders');
    expect(orders?.source).toEqual({ kind: 'module', path: fixture('schemas/order.ts'), exportName: 'Order' });
    expect(v.parse(orders?.schema ?? v.never(), { id: 1, total: '9.5' })).toEqual({ id: 1, total: 9.5 });
    const events = config.channels.get('Order Events');
    expect(events?.source?.kind).toBe('inline');
    expect(v.parse(events?.schema ?? v.never(), { id: 7 })).toEqual({ id: 7, status: 'new' });
    expect(config.channels.get('plain')).toEqual({
      name: 'plain',
      history: 10,
      publish: true,
      public: false,
      durable: false,
      retain: 10_000,
      retainSeconds: 86_400,
      schema: undefined,
      source: undefined,
    });
  });

  test('the shipped channels.toml loads and declares its example channels', async () => {
    const file = join(import.meta.dir, '..', 'channels.toml');
    const config = await parseConfig(readFileSync(file, 'utf8'), file);
    expect([...config.channels.keys()]).toEqual(['orders', 'inventory', 'chat room']);
    expect(config.server.port).toBe(8080);
  });

  test('the durable channel shown commented out in the shipped channels.toml loads, with the defaults it shows', async () => {
    const file = join(import.meta.dir, '..', 'channels.toml');
    const lines = readFileSync(file, 'utf8').split('\n');
    const start = lines.indexOf('# [channels.ledger]');
    const end = lines.findIndex((line, i) => i > start && !/^# [\w[]/.test(line));
    const example = lines.slice(start, end).map((line) => line.slice(2));
    expect(example.length).toBe(4);
    const shown = await parseConfig(example.join('\n'), file);
    const defaults = await parseConfig('[channels.ledger]\ndurable = true\n', file);
    expect(shown.channels.get('ledger')).toMatchObject({ durable: true, retain: 10_000, retainSeconds: 86_400 });
    expect(shown.channels.get('ledger')).toEqual(defaults.channels.get('ledger') as never);
  });
});
