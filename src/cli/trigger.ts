/**
 * `bun run trigger --table T --channel C [--schema S] [--columns a,b] [--events insert,update,delete] [--apply]`:
 * prints (or with `--apply` runs) the SQL of a row-change trigger that notifies `C` through pgws.notify.
 *
 * With `DATABASE_URL` set, the table, its columns and pgws.notify are checked first, so a typo is an error
 * here rather than a trigger that fails at the first write; without it the SQL is printed unchecked.
 * Exit codes: 0 done, 2 a usage error (a bad flag or name, a table or column that does not exist), 1 otherwise.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../base/errors.ts';
import { connectAdmin } from '../db/queries.ts';
import { mismatch, parseColumns, parseEvents, quoteIdent, type TriggerSpec, triggerSql } from '../db/trigger.ts';
import { runTool } from './entry.ts';

const USAGE =
  '(usage: bun run trigger --table T --channel C [--schema S] [--columns a,b,c] [--events insert,update,delete] [--apply])';

function readSpec(): { spec: TriggerSpec; apply: boolean } {
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
        apply: { type: 'boolean', default: false },
      },
    });
  try {
    values = parse().values;
  } catch (error) {
    throw new UsageError(`${error instanceof Error ? error.message : String(error)} ${USAGE}`);
  }
  if (values.table === undefined) throw new UsageError(`--table is required ${USAGE}`);
  if (values.channel === undefined) throw new UsageError(`--channel is required ${USAGE}`);
  const spec: TriggerSpec = {
    schema: values.schema,
    table: values.table,
    channel: values.channel,
    columns: values.columns === undefined ? undefined : parseColumns(values.columns),
    events: parseEvents(values.events),
  };
  return { spec, apply: values.apply };
}

async function main(): Promise<number> {
  const { spec, apply } = readSpec();
  const sql = triggerSql(spec);
  const url = process.env['DATABASE_URL'];
  if (url === undefined || url === '') {
    if (apply) throw new UsageError('--apply needs DATABASE_URL: the database to create the trigger in');
    process.stdout.write(sql);
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
    const [installed] = await db.rows("SELECT to_regprocedure('pgws.notify(text,text)') IS NOT NULL AS yes");
    if (installed?.['yes'] !== true) {
      const message = 'pgws.notify is not installed in this database: run `bun run sql | psql "$DATABASE_URL"` first';
      if (apply) throw new UsageError(message);
      process.stderr.write(`trigger: note: ${message}\n`);
    }
    if (!apply) {
      process.stdout.write(sql);
      return 0;
    }
    await db.script(sql);
    const table = `${quoteIdent(spec.schema)}.${quoteIdent(spec.table)}`;
    process.stderr.write(`trigger: created on ${table} for channel ${JSON.stringify(spec.channel)}\n`);
    return 0;
  } finally {
    await db.end();
  }
}

runTool(main, { prefix: 'trigger: ' });
