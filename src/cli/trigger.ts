/**
 * `bun run trigger --table T --channel C [--schema S] [--columns a,b] [--events insert,update,delete] [--durable]
 * [--apply]`: prints (or with `--apply` runs) the SQL of a row-change trigger that notifies `C` through
 * pgws.notify, or with `--durable` stores each change as a message of the durable channel `C` with pgws.send.
 *
 * With `DATABASE_URL` set, the table, its columns and the pgws function are checked first, so a typo is an
 * error here rather than a trigger that fails at the first write; without it the SQL is printed unchecked.
 * A durable trigger's channel must also be declared durable in channels.toml, which this command does not
 * read: it says so on stderr (stdout is the SQL, often piped to psql).
 * Exit codes: 0 done, 2 a usage error (a bad flag or name, a table or column that does not exist), 1 otherwise.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../base/errors.ts';
import { connectAdmin } from '../db/queries.ts';
import {
  durableDeclaration,
  mismatch,
  parseColumns,
  parseEvents,
  quoteIdent,
  type TriggerSpec,
  triggerSql,
} from '../db/trigger.ts';
import { runTool } from './entry.ts';

const SYNOPSIS =
  'bun run trigger --table T --channel C [--schema S] [--columns a,b,c] [--events insert,update,delete] [--durable] [--apply]';
const USAGE = `(usage: ${SYNOPSIS})`;
const HELP = `usage: ${SYNOPSIS}
Prints the SQL of a trigger that sends each row change of table T on channel C:
  {"table", "schema", "type": "INSERT" | "UPDATE" | "DELETE", "row"} (DELETE: the old row), at commit.
  --schema S      the table's schema (default public)
  --columns a,b   only these columns in "row", in this order (default the whole row)
  --events list   which of insert,update,delete fire it (default all three)
  --durable       store each change with pgws.send as the next message of the durable channel C, instead of
                  notifying it with pgws.notify; declare the channel in channels.toml ([channels.C]
                  durable = true), or its messages are not delivered
  --apply         run the SQL on DATABASE_URL instead of printing it
With DATABASE_URL set, the table, the columns and the pgws function (bun run sql) are checked first.
`;

function readSpec(): { spec: TriggerSpec; apply: boolean } | undefined {
  let values: ReturnType<typeof parse>['values'];
  const parse = () =>
    parseArgs({
      args: Bun.argv.slice(2),
      options: {
        table: { type: 'string' },
        channel: { type: 'string' },
        schema: { type: 'string', default: 'public' },
        columns: { type: 'string' },
        events: { type: 'string', default: 'insert,update,delete' },
        durable: { type: 'boolean', default: false },
        apply: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  try {
    values = parse().values;
  } catch (error) {
    throw new UsageError(`${error instanceof Error ? error.message : String(error)} ${USAGE}`);
  }
  if (values.help) return undefined;
  if (values.table === undefined) throw new UsageError(`--table is required ${USAGE}`);
  if (values.channel === undefined) throw new UsageError(`--channel is required ${USAGE}`);
  const spec: TriggerSpec = {
    schema: values.schema,
    table: values.table,
    channel: values.channel,
    columns: values.columns === undefined ? undefined : parseColumns(values.columns),
    events: parseEvents(values.events),
    durable: values.durable,
  };
  return { spec, apply: values.apply };
}

/** The line that says what a durable trigger's channel needs, beside SQL that cannot show it (stdout is psql's). */
function declareDurable(spec: TriggerSpec): void {
  if (spec.durable !== true) return;
  const toml = durableDeclaration(spec.channel).replace('\n', ' ');
  process.stderr.write(
    `trigger: note: the bridge delivers these messages only if channels.toml declares the channel durable: ${toml}\n`,
  );
}

async function main(): Promise<number> {
  const read = readSpec();
  if (read === undefined) {
    process.stdout.write(HELP);
    return 0;
  }
  const { spec, apply } = read;
  const sql = triggerSql(spec);
  const needs = spec.durable === true ? 'pgws.send' : 'pgws.notify';
  const url = process.env['DATABASE_URL'];
  if (url === undefined || url === '') {
    if (apply) throw new UsageError('--apply needs DATABASE_URL: the database to create the trigger in');
    process.stdout.write(sql);
    declareDurable(spec);
    return 0;
  }
  const db = connectAdmin(url);
  try {
    const [relation] = await db.rows(
      `SELECT c.relkind::text AS kind, c.oid::text AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = $2`,
      [spec.schema, spec.table],
    );
    const columns =
      relation === undefined
        ? []
        : await db.rows(
            'SELECT attname::text AS name FROM pg_attribute WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum',
            [String(relation['oid'])],
          );
    const problem = mismatch(spec, {
      kind: relation === undefined ? undefined : String(relation['kind']),
      columns: columns.map((row) => String(row['name'])),
    });
    if (problem !== undefined) throw new UsageError(problem);
    const [installed] = await db.rows(`SELECT to_regprocedure('${needs}(text,text)') IS NOT NULL AS yes`);
    if (installed?.['yes'] !== true) {
      const message = `${needs} is not installed in this database: run \`bun run sql | psql "$DATABASE_URL"\` first`;
      if (apply) throw new UsageError(message);
      process.stderr.write(`trigger: note: ${message}\n`);
    }
    if (!apply) {
      process.stdout.write(sql);
      declareDurable(spec);
      return 0;
    }
    await db.script(sql);
    const table = `${quoteIdent(spec.schema)}.${quoteIdent(spec.table)}`;
    const kind = spec.durable === true ? 'durable channel' : 'channel';
    process.stderr.write(`trigger: created on ${table} for ${kind} ${JSON.stringify(spec.channel)}\n`);
    declareDurable(spec);
    return 0;
  } finally {
    await db.end();
  }
}

runTool(main, { prefix: 'trigger: ' });
