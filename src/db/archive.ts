/**
 * The durable channels' statements (docs/PROTOCOL.md "Durable channels"), on the query connection of
 * `queries.ts`: a client's publish through `pgws.send`, the positions `pgws.heads` reports, reading rows by
 * seq range (new rows once per instance, replays for resuming clients), and retention.
 *
 * Rows of a channel are consecutive seqs from the oldest retained to the head: `pgws.send` leaves no hole
 * and retention deletes only a prefix. A reader that finds its next row missing knows retention took it.
 */
import type postgres from 'postgres';
import { type Read, read, type Unread, unread } from './reads.ts';

/** A channel's stream as the database holds it. */
export interface Head {
  readonly epoch: string;
  readonly seq: number;
}

/** One stored message: its seq, and its payload unless it is over the reader's `maxBytes` (then its size). */
export type Row =
  | { readonly seq: number; readonly payload: string }
  | { readonly seq: number; readonly payload: undefined; readonly bytes: number };

/** The statements on `pgws.streams` and `pgws.messages`. */
export interface Archive {
  /** `pgws.send($1, $2)`: stores a message; its seq, or why not (`missing`: no pgws.send). */
  send(channel: string, payload: string): Promise<Read<number>>;
  /** Each channel's epoch and last seq, creating the rows of channels nobody sent on yet. */
  heads(channels: readonly string[]): Promise<Read<ReadonlyMap<string, Head>>>;
  /** `pgws.wake`: whether `pgws.send` NOTIFYs these channels' bridges (`[database] ingest = "notify"`) or not. */
  wake(channels: readonly string[], on: boolean): Promise<Read<void>>;
  /** Each channel's last seq as committed now; read-only (channels nobody sent on are absent). */
  positions(channels: readonly string[]): Promise<Read<ReadonlyMap<string, number>>>;
  /** Up to `limit` rows after `after`, in seq order; a payload over `maxBytes` is not pulled. */
  readAfter(channel: string, after: number, limit: number, maxBytes: number): Promise<Read<Row[]>>;
  /** The newest `count` rows, in seq order. */
  readLast(channel: string, count: number, maxBytes: number): Promise<Read<Row[]>>;
  /**
   * Deletes up to `batch` of the oldest rows past `retain` messages or older than `retainSeconds`; resolves to
   * how many went. Bridges of several instances never wait on each other (one trims a channel while the others
   * skip it), and writers, which only insert new rows, are never held up.
   */
  trim(channel: string, retain: number, retainSeconds: number, batch: number): Promise<Read<number>>;
}

// 'pgws' in ASCII, as the install lock; the second key is the channel's hash.
const TRIM_LOCK = 0x70677773;

// A payload over the reader's limit is measured in the query and never pulled.
const rowOf = (row: Record<string, unknown>): Row => {
  const seq = Number(row['seq']);
  const payload: unknown = row['payload'];
  return typeof payload === 'string' ? { seq, payload } : { seq, payload: undefined, bytes: Number(row['bytes']) };
};
const COLUMNS = (maxBytes: number) =>
  `seq, octet_length(payload) AS bytes, CASE WHEN octet_length(payload) <= ${Math.floor(maxBytes)} THEN payload END AS payload`;

/** The statements, on `sql` (the query connection). */
export function createArchive(sql: postgres.Sql): Archive {
  // A text[] built from JSON: the connection does not fetch array types (fetch_types: false), so postgres.js
  // cannot serialise one as a parameter.
  const textArray = (values: readonly string[]) =>
    sql`ARRAY(SELECT json_array_elements_text(${JSON.stringify(values)}::text::json))`;
  return {
    async send(channel, payload) {
      try {
        const [row] = await sql`SELECT pgws.send(${channel}, ${payload}) AS seq`;
        return { ok: true, value: Number(row?.['seq']) };
      } catch (error) {
        return unread(error) satisfies Unread;
      }
    },
    heads: (channels) =>
      read(async () => {
        const rows = await sql`SELECT channel, epoch, seq FROM pgws.heads(${textArray(channels)})`;
        return new Map(
          rows.map((row) => [String(row['channel']), { epoch: String(row['epoch']), seq: Number(row['seq']) }]),
        );
      }),
    wake: (channels, on) =>
      read(async () => {
        await sql`SELECT pgws.wake(${textArray(channels)}, ${on})`;
      }),
    positions: (channels) =>
      read(async () => {
        const rows = await sql`SELECT channel, seq FROM pgws.streams WHERE channel = ANY (${textArray(channels)})`;
        return new Map(rows.map((row) => [String(row['channel']), Number(row['seq'])]));
      }),
    readAfter: (channel, after, limit, maxBytes) =>
      read(async () => {
        const rows = await sql.unsafe(
          `SELECT ${COLUMNS(maxBytes)} FROM pgws.messages WHERE channel = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
          [channel, after, limit],
        );
        return rows.map(rowOf);
      }),
    readLast: (channel, count, maxBytes) =>
      read(async () => {
        const rows = await sql.unsafe(
          `SELECT * FROM (SELECT ${COLUMNS(maxBytes)} FROM pgws.messages WHERE channel = $1 ORDER BY seq DESC LIMIT $2) newest ORDER BY seq`,
          [channel, count],
        );
        return rows.map(rowOf);
      }),
    trim: (channel, retain, retainSeconds, batch) =>
      read(async () => {
        // The cut is a seq: everything at or below it goes. By count, `retain` below the head; by age, just
        // below the oldest row that is young enough (created_at rises with seq), or the head when none is.
        // One bridge at a time per channel (the others skip it this round), oldest rows first, one batch per
        // statement: readers only ever see a prefix gone, never a hole.
        const result = await sql.unsafe(
          `WITH turn AS (SELECT pg_try_advisory_xact_lock(${TRIM_LOCK}, hashtext($1)) AS mine),
                head AS (SELECT seq FROM pgws.streams WHERE channel = $1),
                young AS (SELECT seq FROM pgws.messages
                          WHERE channel = $1 AND created_at >= clock_timestamp() - make_interval(secs => $3)
                          ORDER BY seq LIMIT 1),
                cut AS (SELECT greatest((SELECT seq FROM head) - $2,
                                        coalesce((SELECT seq FROM young) - 1, (SELECT seq FROM head))) AS seq),
                doomed AS (SELECT seq FROM pgws.messages
                           WHERE channel = $1 AND seq <= (SELECT seq FROM cut) AND (SELECT mine FROM turn)
                           ORDER BY seq LIMIT $4)
           DELETE FROM pgws.messages m USING doomed WHERE m.channel = $1 AND m.seq = doomed.seq`,
          [channel, retain, retainSeconds, batch],
        );
        return result.count;
      }),
  };
}
