/**
 * The test kit, `pg-notify-ws/testing`: its record of a channel and `next`'s waits without a database, then
 * whole kit bridges on the suite's database (and one on an embedded database of its own). From another
 * project, through the package's exports, it is exercised by test/outside.test.ts.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INSTALL_SQL } from '../src/db/script.ts';
import { triggerSql } from '../src/db/trigger.ts';
import { startBridge } from '../src/testing/kit.ts';
import { createRecorder, NoMessageError, type Wait } from '../src/testing/recorder.ts';
import { uniqueChannel } from './harness.ts';
import { scratchDatabase } from './pgws.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const root = join(import.meta.dir, '..');
const watched = Promise.resolve();
const wait = (extra: Partial<Wait<unknown>> = {}): Wait<unknown> => ({ timeoutMs: 5000, watched, ...extra });
const at = (seq: number, payload: unknown) => ({ payload, seq, epoch: 'e' });

describe('the record and next (no database)', () => {
  test('next resolves with the first message after the call that where accepts', async () => {
    const recorder = createRecorder();
    recorder.arrived('c', at(1, { n: 1 }));
    const next = recorder.next('c', wait({ where: (payload) => (payload as { n: number }).n > 2 }));
    recorder.arrived('c', at(2, { n: 2 }));
    recorder.arrived('c', at(3, { n: 3 }));
    expect(await next).toEqual(at(3, { n: 3 }));
  });

  test('a timeout lists what arrived since the call, how many before, and every invalid payload with its issues', async () => {
    const recorder = createRecorder();
    recorder.arrived('c', at(1, 'early'));
    recorder.dropped('c', '{"id":"x"}', [{ path: 'id', message: 'Invalid type: Expected integer but received "x"' }]);
    const next = recorder.next('c', wait({ where: () => false, timeoutMs: 50 }));
    recorder.arrived('c', at(2, { id: 2 }));
    recorder.dropped('c', 'not json', [{ path: '', message: 'payload is not JSON: JSON Parse error' }]);
    recorder.arrived('other', at(1, 'elsewhere'));
    const error = await next.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NoMessageError);
    expect((error as NoMessageError).message).toBe(
      [
        'bridge.next("c"): no message matching `where` within 50 ms.',
        'Arrived on "c" since the call, not matching `where` (1):',
        '  seq 2: {"id":2}',
        'Before the call: 1 message on "c" (next waits only for messages after it).',
        'Dropped as invalid on "c" (2):',
        '  {"id":"x"} (before the call)',
        '    id: Invalid type: Expected integer but received "x"',
        '  not json',
        '    (root): payload is not JSON: JSON Parse error',
      ].join('\n'),
    );
    expect((error as NoMessageError).arrived).toEqual([at(2, { id: 2 })]);
    expect(recorder.invalid('c').map((dropped) => dropped.payload)).toEqual(['{"id":"x"}', 'not json']);
  });

  test('a where that throws rejects next with its error', async () => {
    const recorder = createRecorder();
    const next = recorder.next('c', wait({ where: () => JSON.parse('{') }));
    recorder.arrived('c', at(1, 'x'));
    await expect(next).rejects.toThrow(SyntaxError);
  });

  test('a channel that cannot be watched rejects next at once, and stopping rejects the waits still open', async () => {
    const recorder = createRecorder();
    const refused = recorder.next(
      'c',
      wait({ watched: Promise.reject(new Error('subscribe refused: unknown_channel')) }),
    );
    await expect(refused).rejects.toThrow(
      'bridge.next("c"): the channel cannot be watched: subscribe refused: unknown_channel',
    );
    const open = recorder.next('d', wait());
    recorder.close();
    await expect(open).rejects.toThrow('the bridge was stopped');
    await expect(recorder.next('d', wait())).rejects.toThrow('the bridge is stopped');
  });
});

describe('startBridge', () => {
  test('next gives the validated, parsed payload of a schema channel with its position, and the text of a raw one', async () => {
    await using bridge = await startBridge({ config: join(root, 'channels.toml') });
    expect(bridge.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    const inventory = bridge.next('inventory');
    const chat = bridge.next('chat room');
    await bridge.sql`SELECT pg_notify('inventory', '{"sku":"AB-12","quantity":3}'), pg_notify('chat room', ' hi ')`;
    expect(await inventory).toEqual({
      payload: { sku: 'AB-12', quantity: 3, warehouse: 'main' },
      seq: 1,
      epoch: expect.any(String),
    });
    expect((await chat).payload).toBe(' hi ');
  });

  test('a payload failing the schema is in invalid() and in the timeout of next, with its issues and the test as its site', async () => {
    const channel = uniqueChannel('kit');
    const config = `[channels.${channel}.schema]\ntype = "object"\nrequired = ["id"]\nproperties.id.type = "integer"\n`;
    await using bridge = await startBridge({ config });
    const next = bridge.next(channel, { timeoutMs: 300 });
    await bridge.sql`SELECT pg_notify(${channel}, '{"id":"x"}')`;
    const error = (await next.catch((caught: unknown) => caught)) as Error;
    expect(error.message).toBe(
      [
        `bridge.next("${channel}"): no message within 300 ms.`,
        `Arrived on "${channel}" since the call: nothing.`,
        `Dropped as invalid on "${channel}" (1):`,
        '  {"id":"x"}',
        '    id: Invalid type: Expected integer but received "x"',
      ].join('\n'),
    );
    // A runner shows the first frame: this test's `bridge.next` line, not the kit's timer.
    expect(error.stack?.split('\n').find((line) => line.includes(' at '))).toContain('testing.test.ts');
    expect(bridge.invalid(channel)).toEqual([
      { payload: '{"id":"x"}', issues: [{ path: 'id', message: 'Invalid type: Expected integer but received "x"' }] },
    ]);
  });

  test('an undeclared channel is watched from its first next, or from the start with watch', async () => {
    const [later, early] = [uniqueChannel('later'), uniqueChannel('early')];
    await using bridge = await startBridge({ config: '[server]\n', watch: [early] });
    const first = bridge.next(early);
    await bridge.sql`SELECT pg_notify(${early}, 'at once')`;
    expect((await first).payload).toBe('at once');
    await expect(bridge.next(later, { timeoutMs: 300 })).rejects.toThrow(NoMessageError);
    const second = bridge.next(later);
    await bridge.sql`SELECT pg_notify(${later}, 'watched now')`;
    expect((await second).payload).toBe('watched now');
  });

  test('with unknown_channels = "reject" an undeclared channel rejects next at once, naming the refusal', async () => {
    await using bridge = await startBridge({ config: '[server]\nunknown_channels = "reject"\n' });
    await expect(bridge.next('nope', { timeoutMs: 30_000 })).rejects.toThrow('the channel cannot be watched');
  });

  test('client() is a typed client connected to the bridge and closed with it; next after stop rejects', async () => {
    const channel = uniqueChannel('client');
    const bridge = await startBridge<Record<string, string>>({ config: '[server]\n' });
    const client = bridge.client();
    const subscribed = Promise.withResolvers<void>();
    const received = Promise.withResolvers<string>();
    client.subscribe(channel, { onSubscribed: () => subscribed.resolve(), onMessage: received.resolve });
    await subscribed.promise;
    await bridge.sql`SELECT pg_notify(${channel}, 'to the client')`;
    expect(await received.promise).toBe('to the client');
    await bridge.stop();
    expect(client.state).toBe('closed');
    await expect(bridge.next(channel)).rejects.toThrow('the bridge is stopped');
  });

  test("the README's failure for a renamed column is what next says", async () => {
    await using db = await scratchDatabase();
    await using bridge = await startBridge({ config: join(root, 'channels.toml'), databaseUrl: db.url });
    await bridge.sql`CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL DEFAULT 'new', total numeric(10, 2) NOT NULL)`;
    await bridge.sql.unsafe(INSTALL_SQL).simple();
    const events = ['insert', 'update', 'delete'] as const;
    await bridge.sql.unsafe(triggerSql({ schema: 'public', table: 'orders', channel: 'orders', events })).simple();
    await bridge.sql`ALTER TABLE orders RENAME COLUMN id TO order_id`;
    const next = bridge.next('orders', { timeoutMs: 500 });
    await bridge.sql`INSERT INTO orders (order_id, total) VALUES (3, 10)`;
    const error = await next.catch((caught: unknown) => caught);
    const readme = await Bun.file(join(root, 'README.md')).text();
    const shown = /fails with this.*?```text\n(.*?)\n```/s.exec(readme)?.[1];
    expect(shown).toBe((error as Error).message);
  });
});

describe('nothing outlives a kit bridge', () => {
  /** The directories the kit's embedded databases live in. */
  const kitDirectories = () => readdirSync(tmpdir()).filter((name) => name.startsWith('pgws-kit-'));
  /** Whether nothing accepts TCP connections at the URL's host and port any more. */
  const refused = async (url: string) => {
    const { hostname, port } = new URL(url);
    try {
      const socket = await Bun.connect({ hostname, port: Number(port), socket: { data() {} } });
      socket.end();
      return false;
    } catch {
      return true;
    }
  };

  test('on a given database: its port closes and none of its connections stay', async () => {
    await using db = await scratchDatabase();
    const bridge = await startBridge({ config: join(root, 'channels.toml'), databaseUrl: db.url });
    bridge.client();
    const connected = async () => {
      const [row] = await db.sql`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
      return row?.['n'];
    };
    expect(await connected()).toBeGreaterThan(1);
    await bridge.stop();
    expect(await refused(bridge.url)).toBe(true);
    expect(await connected()).toBe(0);
  });

  test('on its own embedded database: the server stops and its directory is removed', async () => {
    const before = kitDirectories();
    const given = process.env['TEST_DATABASE_URL'];
    delete process.env['TEST_DATABASE_URL'];
    const bridge = await startBridge({ config: join(root, 'channels.toml') }).finally(() => {
      process.env['TEST_DATABASE_URL'] = given;
    });
    expect(bridge.databaseUrl).not.toBe(given);
    expect(kitDirectories().length).toBe(before.length + 1);
    const next = bridge.next('chat room');
    await bridge.sql`SELECT pg_notify('chat room', 'on its own database')`;
    expect((await next).payload).toBe('on its own database');
    await bridge.stop();
    expect(await refused(bridge.url)).toBe(true);
    expect(await refused(bridge.databaseUrl)).toBe(true);
    expect(kitDirectories()).toEqual(before);
  });
});
