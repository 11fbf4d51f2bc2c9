/**
 * The SQL of a row-change trigger (`bun run trigger`): a trigger function and a trigger that send
 * `{"table": T, "schema": S, "type": "INSERT"|"UPDATE"|"DELETE", "row": {...}}` on a channel through
 * `pgws.notify`, so a row of any width arrives, or (`durable`) store it with `pgws.send` as the durable
 * channel's next message. Pure: text in, text out; the command line (src/cli/trigger.ts) checks names
 * against a database and applies it.
 *
 * Every name reaches SQL quoted: identifiers as `"..."` with `"` doubled, text as `'...'` with `'`
 * doubled (and `E'...'` when it holds a backslash, as quote_literal does, so the setting
 * standard_conforming_strings cannot change its meaning). Names are also never written raw into
 * comments, where a newline would end the comment.
 */

import { UsageError } from '../base/errors.ts';
import { checkChannelName } from '../base/name.ts';
import { formatPath } from '../config/load.ts';

/** The row events a trigger can fire on. */
export const EVENTS = ['insert', 'update', 'delete'] as const;
/** One of {@link EVENTS}. */
export type TriggerEvent = (typeof EVENTS)[number];

/** What to generate. */
export interface TriggerSpec {
  readonly schema: string;
  readonly table: string;
  readonly channel: string;
  /** Columns of `row`, in this order; undefined means the whole row. */
  readonly columns?: readonly string[] | undefined;
  readonly events: readonly TriggerEvent[];
  /** Store each change with `pgws.send` (a durable channel's message) instead of notifying it. */
  readonly durable?: boolean | undefined;
}

// PG: identifiers longer than NAMEDATALEN - 1 bytes are truncated, so they would name something else.
const MAX_IDENTIFIER_BYTES = 63;
const encoder = new TextEncoder();

/** `"name"` with every `"` doubled: safe for any name, and keeps its case. */
export const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** `'text'` with `'` doubled; `E'...'` with backslashes doubled when there are any (PostgreSQL's quote_literal). */
export function quoteLiteral(text: string): string {
  const quoted = text.replaceAll("'", "''");
  return text.includes('\\') ? `E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`;
}

/** Checks a table, schema or column name; the message says what is wrong with which. */
export function checkIdentifier(what: string, name: string): void {
  if (name.length === 0) throw new UsageError(`${what} name is empty`);
  if (name.includes('\0')) throw new UsageError(`${what} name ${JSON.stringify(name)} contains NUL`);
  if (!name.isWellFormed()) throw new UsageError(`${what} name ${JSON.stringify(name)} is not valid Unicode`);
  const bytes = encoder.encode(name).length;
  if (bytes > MAX_IDENTIFIER_BYTES) {
    throw new UsageError(
      `${what} name ${JSON.stringify(name)} is ${bytes} bytes; PostgreSQL identifiers are at most ${MAX_IDENTIFIER_BYTES}`,
    );
  }
}

/** Reads `--events insert,update,delete` (any order, any case); the result is in table order. */
export function parseEvents(text: string): TriggerEvent[] {
  const named = text.split(',').map((event) => event.trim().toLowerCase());
  const unknown = named.find((event) => !(EVENTS as readonly string[]).includes(event));
  if (unknown !== undefined) {
    throw new UsageError(`--events: unknown event ${JSON.stringify(unknown)} (choose from ${EVENTS.join(', ')})`);
  }
  return EVENTS.filter((event) => named.includes(event));
}

/** Reads `--columns a,b,c`: names as written (case kept), no duplicates. */
export function parseColumns(text: string): string[] {
  const columns = text.split(',').map((column) => column.trim());
  for (const column of columns) checkIdentifier('column', column);
  const twice = columns.find((column, i) => columns.indexOf(column) !== i);
  if (twice !== undefined) throw new UsageError(`--columns: ${JSON.stringify(twice)} is listed twice`);
  return columns;
}

/** A name of at most 63 bytes: `base` itself, or its start plus a hash of all of it (stable across runs). */
function shortName(base: string): string {
  if (encoder.encode(base).length <= MAX_IDENTIFIER_BYTES) return base;
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(base)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  let head = '';
  for (const char of base) {
    if (encoder.encode(head + char).length > MAX_IDENTIFIER_BYTES - 9) break;
    head += char;
  }
  return `${head}_${hash.toString(16).padStart(8, '0')}`;
}

/** The trigger's name (one per channel on a table) and its function's (one per table and channel in the schema). */
export function triggerNames(spec: Pick<TriggerSpec, 'table' | 'channel'>) {
  return {
    trigger: shortName(`pgws_notify_${spec.channel}`),
    fn: shortName(`pgws_notify_${spec.table}_${spec.channel}`),
  };
}

/** `$pgws$`, or `$pgws_N$` if the body holds that: a dollar quote the body cannot end early. */
function dollarTag(body: string): string {
  for (let n = 0; ; n++) {
    const tag = n === 0 ? '$pgws$' : `$pgws_${n}$`;
    if (!body.includes(tag)) return tag;
  }
}

/** The SQL text: one function and one trigger, safe to run again (it replaces both). */
export function triggerSql(spec: TriggerSpec): string {
  checkIdentifier('schema', spec.schema);
  checkIdentifier('table', spec.table);
  const channel = checkChannelName(spec.channel);
  if (!channel.ok) throw new UsageError(`--channel: ${channel.reason}`);
  if (spec.events.length === 0) throw new UsageError('--events: name at least one of insert, update, delete');
  for (const column of spec.columns ?? []) checkIdentifier('column', column);

  const table = `${quoteIdent(spec.schema)}.${quoteIdent(spec.table)}`;
  const names = triggerNames(spec);
  const fn = `${quoteIdent(spec.schema)}.${quoteIdent(names.fn)}`;
  // row_to_json keeps the columns' order; `r.*` is the whole row even when a column is named r.
  const row =
    spec.columns === undefined
      ? 'row_to_json(rec)'
      : `(SELECT row_to_json(r.*) FROM (SELECT ${spec.columns.map((c) => `rec.${quoteIdent(c)} AS ${quoteIdent(c)}`).join(', ')}) AS r)`;
  const body = `
DECLARE
  rec record;
BEGIN
  -- DELETE: the old row; INSERT and UPDATE: the new one.
  IF TG_OP = 'DELETE' THEN rec := OLD; ELSE rec := NEW; END IF;
  PERFORM ${spec.durable === true ? 'pgws.send' : 'pgws.notify'}(${quoteLiteral(spec.channel)}, json_build_object(
    'table', TG_TABLE_NAME, 'schema', TG_TABLE_SCHEMA, 'type', TG_OP,
    'row', ${row}
  )::text);
  RETURN NULL;
END;
`;
  const tag = dollarTag(body);
  const events = spec.events.map((event) => event.toUpperCase()).join(' OR ');
  const describe = (name: string) => JSON.stringify(name);
  const how =
    spec.durable === true
      ? `-- stored by pgws.send (bun run sql installs it) as the channel's next message, delivered at commit;
-- a rolled-back change takes no seq. Delivered only where channels.toml has ${durableDeclaration(spec.channel).replace('\n', ' ')}.`
      : '-- sent at commit through pgws.notify (bun run sql installs it), so a row of any width arrives.';
  return `-- pg-notify-ws: row changes of ${describe(spec.schema)}.${describe(spec.table)} on ${spec.durable === true ? 'durable ' : ''}channel ${describe(spec.channel)}.
-- Payload: {"table", "schema", "type": "INSERT" | "UPDATE" | "DELETE", "row"} (DELETE: the old row),
${how}
-- Safe to run again: it replaces the function and the trigger (PostgreSQL 14 or later).
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger
  LANGUAGE plpgsql AS ${tag}${body}${tag};

CREATE OR REPLACE TRIGGER ${quoteIdent(names.trigger)}
  AFTER ${events} ON ${table}
  FOR EACH ROW EXECUTE FUNCTION ${fn}();
`;
}

/**
 * What channels.toml must say for the bridge to deliver a durable trigger's messages, ready to paste:
 * `[channels.orders]` and `durable = true`, the name quoted as TOML wants (`[channels."chat room"]`).
 */
export function durableDeclaration(channel: string): string {
  // TOML basic strings refuse a raw DEL, which JSON.stringify leaves as it is.
  return `[${formatPath(['channels', channel]).replaceAll('\u007f', '\\u007f')}]\ndurable = true`;
}

/** What a database says about the names (read by the command line); undefined `kind`: no such relation. */
export interface TableFacts {
  readonly kind: string | undefined;
  readonly columns: readonly string[];
}

/** Whether the spec fits the table as it is: undefined, or an error message naming what is missing. */
export function mismatch(spec: TriggerSpec, facts: TableFacts): string | undefined {
  const table = `${quoteIdent(spec.schema)}.${quoteIdent(spec.table)}`;
  if (facts.kind === undefined) return `table ${table} does not exist (names are case-sensitive)`;
  // PG relkind: r = table, p = partitioned table; row triggers on views need INSTEAD OF.
  if (facts.kind !== 'r' && facts.kind !== 'p') return `${table} is not a table`;
  const missing = (spec.columns ?? []).filter((column) => !facts.columns.includes(column));
  if (missing.length === 0) return undefined;
  return `table ${table} has no column ${missing.map(quoteIdent).join(', ')} (it has ${facts.columns.map(quoteIdent).join(', ')})`;
}
