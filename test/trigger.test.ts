/**
 * The trigger generator: quoting and names without a database, then the generated SQL on real tables
 * with awkward names (quotes, spaces, uppercase, unicode) for every event, the durable trigger's stored
 * messages, and `bun run trigger` itself.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import postgres from 'postgres';
import { UsageError } from '../src/base/errors.ts';
import { parseConfig } from '../src/config/load.ts';
import {
  durableDeclaration,
  EVENTS,
  mismatch,
  parseColumns,
  parseEvents,
  quoteIdent,
  quoteLiteral,
  type TriggerSpec,
  triggerNames,
  triggerSql,
} from '../src/db/trigger.ts';
import { databaseUrl, uniqueChannel, within } from './harness.ts';
import { installPgws, scratchDatabase } from './pgws.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const root = join(import.meta.dir, '..');
const spec = (extra: Partial<TriggerSpec> = {}): TriggerSpec => ({
  schema: 'public',
  table: 'orders',
  channel: 'orders',
  events: EVENTS,
  ...extra,
});

describe('quoting and names (no database)', () => {
  test.each([
    ['lowercase', 'orders', '"orders"'],
    ['uppercase, kept as written', 'Orders', '"Orders"'],
    ['spaces', 'order items', '"order items"'],
    ['double quotes, doubled', 'say "hi"', '"say ""hi"""'],
    ['unicode', 'заказы ünï 🚀', '"заказы ünï 🚀"'],
    ['SQL', 'x"; DROP TABLE t; --', '"x""; DROP TABLE t; --"'],
  ])('an identifier with %s is quoted', (_, name, quoted) => {
    expect(quoteIdent(name)).toBe(quoted);
  });

  test.each([
    ['plain text', 'orders', "'orders'"],
    ['single quotes, doubled', "it's", "'it''s'"],
    ['a backslash, as an escape string', 'a\\b', "E'a\\\\b'"],
    ['unicode', 'ünï 🚀', "'ünï 🚀'"],
  ])('a literal with %s is quoted', (_, text, quoted) => {
    expect(quoteLiteral(text)).toBe(quoted);
  });

  test('a body that holds the dollar quote gets another tag, so the channel cannot end the function early', () => {
    const sql = triggerSql(spec({ channel: 'a$pgws$b' }));
    expect(sql).toContain('AS $pgws_1$');
    expect(sql).toContain("pgws.notify('a$pgws$b',");
  });

  test('names longer than PostgreSQL keeps are shortened to 63 bytes with a stable hash', () => {
    const long = { table: 'é'.repeat(31), channel: 'c'.repeat(63) };
    const names = triggerNames(long);
    expect(new TextEncoder().encode(names.fn).length).toBeLessThanOrEqual(63);
    expect(new TextEncoder().encode(names.trigger).length).toBeLessThanOrEqual(63);
    expect(triggerNames(long)).toEqual(names);
    expect(triggerNames({ ...long, channel: 'd'.repeat(63) }).fn).not.toBe(names.fn);
    expect(triggerNames({ table: 'orders', channel: 'orders' })).toEqual({
      trigger: 'pgws_notify_orders',
      fn: 'pgws_notify_orders_orders',
    });
  });

  test('a name with a newline cannot break out of the comment at the top', () => {
    const sql = triggerSql(spec({ table: 'x\nDROP TABLE y; --' }));
    const header = sql.split('\n').slice(0, 4);
    expect(header.every((line) => line.startsWith('-- '))).toBe(true);
    expect(header[0]).toContain('"public"."x\\nDROP TABLE y; --"');
  });

  test.each([
    ['no events', () => triggerSql(spec({ events: [] })), '--events: name at least one of insert, update, delete'],
    ['an unknown event', () => parseEvents('insert,truncate'), '--events: unknown event "truncate"'],
    ['a column twice', () => parseColumns('a,b,a'), '--columns: "a" is listed twice'],
    ['an empty column', () => parseColumns('a,,b'), 'column name is empty'],
    ['a 64-byte table name', () => triggerSql(spec({ table: 'x'.repeat(64) })), 'is 64 bytes'],
    ['an empty channel', () => triggerSql(spec({ channel: '' })), '--channel: channel name is empty'],
  ])('refuses %s with a usage error', (_, run, message) => {
    expect(run).toThrow(UsageError);
    expect(run).toThrow(message);
  });

  test('a durable trigger stores through pgws.send, not pgws.notify, and its header says what to declare', () => {
    const sql = triggerSql(spec({ channel: 'chat room', durable: true }));
    expect(sql).toContain("PERFORM pgws.send('chat room', json_build_object(");
    expect(sql).not.toContain('pgws.notify');
    expect(sql).toContain('on durable channel "chat room"');
    expect(sql).toContain('channels.toml has [channels."chat room"] durable = true.');
    // The same names as the plain trigger: running one replaces the other.
    expect(sql).toContain('CREATE OR REPLACE TRIGGER "pgws_notify_chat room"');
  });

  test.each([
    ['a bare name', 'orders'],
    ['a space', 'chat room'],
    ['quotes and a backslash', 'say "hi" \\o/'],
    ['a newline and DEL', 'a\nb\u007fc'],
    ['unicode', 'заказы 🚀'],
  ])('the declaration it asks for, with %s, is TOML that declares that channel durable', async (_, channel) => {
    const config = await parseConfig(durableDeclaration(channel), 'channels.toml');
    expect([...config.channels.keys()]).toEqual([channel]);
    expect(config.channels.get(channel)?.durable).toBe(true);
  });

  test('events are read in any order and case, and kept in table order', () => {
    expect(parseEvents('Delete, insert')).toEqual(['insert', 'delete']);
  });

  test('a table or column that does not exist is named in the error', () => {
    const columns = ['id', 'Total'];
    expect(mismatch(spec(), { kind: undefined, columns: [] })).toBe(
      'table "public"."orders" does not exist (names are case-sensitive)',
    );
    expect(mismatch(spec(), { kind: 'v', columns })).toBe('"public"."orders" is not a table');
    expect(mismatch(spec({ columns: ['id', 'total'] }), { kind: 'r', columns })).toBe(
      'table "public"."orders" has no column "total" (it has "id", "Total")',
    );
    expect(mismatch(spec({ columns: ['Total'] }), { kind: 'p', columns })).toBeUndefined();
  });
});

describe('the generated trigger on a real table', () => {
  const schema = `pgws Trigger "Tests" ${process.pid}_${Math.random().toString(36).slice(2, 6)}`;
  let sql: postgres.Sql;

  beforeAll(async () => {
    await installPgws();
    sql = postgres(databaseUrl(), { max: 2, onnotice: () => {} });
    await sql.unsafe(`CREATE SCHEMA ${quoteIdent(schema)}`);
  });
  afterAll(async () => {
    await sql.unsafe(`DROP SCHEMA ${quoteIdent(schema)} CASCADE`);
    await sql.end({ timeout: 1 });
  });

  test('literals are what quote_literal makes, and quoted names and texts read back exactly', async () => {
    for (const text of ["it's", "a\\b'c", 'ünï 🚀', 'x"; DROP TABLE t; --', 'line\nbreak', '$pgws$']) {
      const [row] = await sql.unsafe(
        `SELECT quote_literal($1) AS pg, ${quoteLiteral(text)} AS back, 1 AS ${quoteIdent(text)}`,
        [text],
      );
      expect({ ...row }).toEqual({ pg: quoteLiteral(text), back: text, [text]: 1 });
    }
  });

  /** Creates a table with awkward column names; returns a function that collects notifications on `channel`. */
  async function table(name: string, channel: string) {
    await sql.unsafe(
      `CREATE TABLE ${quoteIdent(schema)}.${quoteIdent(name)} (id int PRIMARY KEY, "Note" text, "say ""hi""" text)`,
    );
    const payloads: unknown[] = [];
    let wake = Promise.withResolvers<void>();
    const { unlisten } = await sql.listen(channel, (payload) => {
      payloads.push(payload === 'end' ? 'end' : JSON.parse(payload));
      wake.resolve();
      wake = Promise.withResolvers<void>();
    });
    const target = `${quoteIdent(schema)}.${quoteIdent(name)}`;
    return {
      /** Inserts, updates and deletes one row, then sends `end`; resolves with everything up to `end`. */
      async change() {
        await sql.unsafe(`INSERT INTO ${target} VALUES (1, 'new', 'h1')`);
        await sql.unsafe(`UPDATE ${target} SET "Note" = 'changed'`);
        await sql.unsafe(`DELETE FROM ${target}`);
        await sql`SELECT pg_notify(${channel}, 'end')`;
        while (!payloads.includes('end')) await within(wake.promise, 5000, `notifications on ${channel}`);
        await unlisten();
        return payloads.slice(0, -1);
      },
    };
  }

  test.each([
    ['double quotes', 'Order "Items"'],
    ['spaces', 'order items'],
    ['uppercase', 'ORDERS'],
    ['unicode', 'заказы ünï'],
  ])('a table named with %s notifies INSERT, UPDATE and DELETE (the old row) with its whole row', async (_, name) => {
    const channel = uniqueChannel('trg');
    const t = await table(name, channel);
    await sql.unsafe(triggerSql({ schema, table: name, channel, events: EVENTS })).simple();
    const row = (note: string) => ({ id: 1, Note: note, 'say "hi"': 'h1' });
    expect(await t.change()).toEqual([
      { table: name, schema, type: 'INSERT', row: row('new') },
      { table: name, schema, type: 'UPDATE', row: row('changed') },
      { table: name, schema, type: 'DELETE', row: row('changed') },
    ]);
  });

  test('--columns limits the row to those columns, in that order', async () => {
    const channel = uniqueChannel('cols');
    const t = await table('With Columns', channel);
    const columns = ['say "hi"', 'id'];
    await sql.unsafe(triggerSql({ schema, table: 'With Columns', channel, columns, events: EVENTS })).simple();
    const [insert] = (await t.change()) as Array<{ row: object }>;
    expect(Object.entries(insert?.row ?? {})).toEqual([
      ['say "hi"', 'h1'],
      ['id', 1],
    ]);
  });

  test.each(EVENTS.map((event) => [event]))('--events %s fires on that event alone', async (event) => {
    const channel = uniqueChannel(`ev_${event}`);
    const name = `Only ${event}`;
    const t = await table(name, channel);
    await sql.unsafe(triggerSql({ schema, table: name, channel, events: [event] })).simple();
    const seen = (await t.change()) as Array<{ type: string }>;
    expect(seen.map((p) => p.type)).toEqual([event.toUpperCase()]);
  });

  test('running the SQL again replaces the trigger instead of adding a second one', async () => {
    const channel = uniqueChannel('again');
    const t = await table('Twice', channel);
    const text = triggerSql({ schema, table: 'Twice', channel, events: ['insert'] });
    await sql.unsafe(text).simple();
    await sql.unsafe(text).simple();
    expect((await t.change()).length).toBe(1);
  });

  describe('durable', () => {
    const channels: string[] = [];
    afterAll(async () => {
      await sql`DELETE FROM pgws.messages WHERE channel = ANY (${channels})`;
      await sql`DELETE FROM pgws.streams WHERE channel = ANY (${channels})`;
    });
    /** A table with the durable trigger on a channel of its own; `stored()` reads back the channel's messages. */
    async function durableTable(name: string, extra: Partial<TriggerSpec> = {}) {
      const channel = uniqueChannel('durable');
      channels.push(channel);
      const target = `${quoteIdent(schema)}.${quoteIdent(name)}`;
      await sql.unsafe(`CREATE TABLE ${target} (id int PRIMARY KEY, "Note" text)`);
      await sql.unsafe(triggerSql({ schema, table: name, channel, events: EVENTS, durable: true, ...extra })).simple();
      const stored = async () =>
        (
          await sql<{ seq: string; payload: string }[]>`
            SELECT seq::text, payload FROM pgws.messages WHERE channel = ${channel} ORDER BY seq`
        ).map((row) => ({ seq: Number(row.seq), ...JSON.parse(row.payload) }));
      return { channel, target, stored };
    }

    test('stores the committed changes as consecutive messages, and nothing of a rolled-back transaction', async () => {
      const t = await durableTable('Durable "Orders"');
      await sql.begin(async (tx) => {
        await tx.unsafe(`INSERT INTO ${t.target} VALUES (1, 'first'), (2, 'second')`);
      });
      const rolledBack = sql.begin(async (tx) => {
        await tx.unsafe(`INSERT INTO ${t.target} VALUES (3, 'rolled back')`);
        await tx.unsafe(`UPDATE ${t.target} SET "Note" = 'rolled back too' WHERE id = 1`);
        throw new Error('roll back');
      });
      await expect(rolledBack).rejects.toThrow('roll back');
      await sql.begin(async (tx) => {
        await tx.unsafe(`UPDATE ${t.target} SET "Note" = 'changed' WHERE id = 2`);
        await tx.unsafe(`DELETE FROM ${t.target} WHERE id = 1`);
      });
      const change = (seq: number, type: string, id: number, Note: string) => ({
        seq,
        table: 'Durable "Orders"',
        schema,
        type,
        row: { id, Note },
      });
      expect(await t.stored()).toEqual([
        change(1, 'INSERT', 1, 'first'),
        change(2, 'INSERT', 2, 'second'),
        change(3, 'UPDATE', 2, 'changed'),
        change(4, 'DELETE', 1, 'first'),
      ]);
    });

    test('--columns and --events apply to the stored messages as to notifications', async () => {
      const t = await durableTable('Durable Columns', { columns: ['Note'], events: ['update'] });
      await sql.unsafe(`INSERT INTO ${t.target} VALUES (1, 'new')`);
      await sql.unsafe(`UPDATE ${t.target} SET "Note" = 'changed'`);
      await sql.unsafe(`DELETE FROM ${t.target}`);
      expect((await t.stored()).map(({ seq, type, row }) => ({ seq, type, row }))).toEqual([
        { seq: 1, type: 'UPDATE', row: { Note: 'changed' } },
      ]);
    });
  });

  describe('bun run trigger', () => {
    beforeAll(async () => {
      await sql.unsafe(`CREATE TABLE ${quoteIdent(schema)}."Checked" (id int, "Note" text)`);
    });
    const run = (args: string[], env: Record<string, string> = {}) => {
      const { PATH, HOME } = process.env;
      const result = Bun.spawnSync([process.execPath, 'src/cli/trigger.ts', ...args], {
        cwd: root,
        env: { PATH: PATH ?? '', HOME: HOME ?? '', ...env },
      });
      return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
    };

    test('without DATABASE_URL prints the SQL unchecked', () => {
      const result = run(['--table', 'No Such', '--channel', 'c', '--schema', 's', '--events', 'delete']);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(triggerSql({ schema: 's', table: 'No Such', channel: 'c', events: ['delete'] }));
    });

    test('--durable prints the pgws.send trigger, and on stderr the declaration channels.toml needs', () => {
      const result = run(['--table', 'orders', '--channel', 'chat room', '--durable']);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(triggerSql(spec({ channel: 'chat room', durable: true })));
      expect(result.stderr).toBe(
        'trigger: note: the bridge delivers these messages only if channels.toml declares the channel durable: [channels."chat room"] durable = true\n',
      );
    });

    test('a plain trigger prints no note', () => {
      expect(run(['--table', 'orders', '--channel', 'orders']).stderr).toBe('');
    });

    test.each([['--help'], ['-h']])('%s prints the usage with --durable and exits 0', (flag) => {
      const result = run([flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toStartWith('usage: bun run trigger --table T --channel C');
      expect(result.stdout).toContain('--durable       store each change with pgws.send');
      expect(result.stdout).toContain('durable = true');
      expect(result.stderr).toBe('');
    });

    test.each([
      ['no --table', ['--channel', 'c'], false, '--table is required'],
      ['an unknown flag', ['--table', 't', '--channel', 'c', '--nope'], false, "Unknown option '--nope'"],
      ['--apply without DATABASE_URL', ['--table', 't', '--channel', 'c', '--apply'], false, 'needs DATABASE_URL'],
      [
        'a table that does not exist',
        ['--table', 'Nope', '--channel', 'c'],
        true,
        'table "public"."Nope" does not exist',
      ],
      ['a column that does not exist', ['--table', 'Checked', '--columns', 'id,nope'], true, 'has no column "nope"'],
    ] as const)('exits 2 with one line for %s', (_, args, withDatabase, message) => {
      const extra = args[1] === 'Checked' ? ['--channel', 'c', '--schema', schema] : [];
      const result = run([...args, ...extra], withDatabase ? { DATABASE_URL: databaseUrl() } : {});
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(message);
      expect(result.stderr.trim().split('\n').length).toBe(1);
      expect(result.stdout).toBe('');
    });

    test('--apply creates the trigger on DATABASE_URL', async () => {
      const channel = uniqueChannel('apply');
      const t = await table('Applied', channel);
      const args = ['--table', 'Applied', '--schema', schema, '--channel', channel, '--events', 'insert', '--apply'];
      const result = run(args, { DATABASE_URL: databaseUrl() });
      expect(result).toMatchObject({ code: 0, stdout: '' });
      expect(((await t.change()) as Array<{ type: string }>).map((p) => p.type)).toEqual(['INSERT']);
    });

    test('--durable --apply creates the trigger that stores messages, and names the declaration', async () => {
      const channel = uniqueChannel('apply_durable');
      await sql.unsafe(`CREATE TABLE ${quoteIdent(schema)}."Applied Durable" (id int)`);
      const args = ['--table', 'Applied Durable', '--schema', schema, '--channel', channel, '--durable', '--apply'];
      const result = run(args, { DATABASE_URL: databaseUrl() });
      expect(result).toMatchObject({ code: 0, stdout: '' });
      expect(result.stderr).toContain(`for durable channel "${channel}"`);
      expect(result.stderr).toContain(`[channels.${channel}] durable = true`);
      try {
        await sql.unsafe(`INSERT INTO ${quoteIdent(schema)}."Applied Durable" VALUES (7), (8)`);
        const rows =
          await sql`SELECT seq::int, payload::json -> 'row' AS row FROM pgws.messages WHERE channel = ${channel} ORDER BY seq`;
        expect(rows.map((r) => ({ ...r }))).toEqual([
          { seq: 1, row: { id: 7 } },
          { seq: 2, row: { id: 8 } },
        ]);
      } finally {
        await sql`DELETE FROM pgws.messages WHERE channel = ${channel}`;
        await sql`DELETE FROM pgws.streams WHERE channel = ${channel}`;
      }
    });

    test('--durable --apply on a database without pgws.send exits 2 and says to run bun run sql', async () => {
      await using db = await scratchDatabase();
      await db.sql`CREATE TABLE t (id int)`;
      const result = run(['--table', 't', '--channel', 'c', '--durable', '--apply'], { DATABASE_URL: db.url });
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        'trigger: pgws.send is not installed in this database: run `bun run sql | psql "$DATABASE_URL"` first\n',
      );
    });
  });
});
