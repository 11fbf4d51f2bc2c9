/**
 * The bridge's query connection: the readiness probe's NOTIFY, client publishes, the stored payloads
 * of `pgws.notify` (fetch, sweep), and the cut-offs of `pgws.disconnect` and `pgws.revoke`. One small
 * `max: 1` postgres.js client beside the LISTEN connection (`listener.ts`), in every process: a worker
 * publishes and probes through its own. Also the command-line tools' short-lived connection (`connectAdmin`)
 * and the test kit's client (`connectSql`).
 */
import postgres from 'postgres';
import type { Fetched } from '../channels/reference.ts';
import { type Archive, createArchive } from './archive.ts';
import { FORBIDDEN, isNotInstalled, type Read, read, sqlState, type Unread, unread } from './reads.ts';
import { DISCONNECT_KEEP_SECONDS } from './script.ts';

export type { Read, Unread } from './reads.ts';

/** Statements on the query connection, all with bound parameters. */
export interface Queries extends Archive {
  /** Sends `pg_notify(channel, payload)` from the query connection; resolves to the queue usage (0..1). */
  notify(channel: string, payload: string): Promise<number>;
  /**
   * A client's publish: `pg_notify($1, $2)` with bound parameters (never SQL text) on the query
   * connection, resolved once PostgreSQL has returned.
   */
  publish(channel: string, payload: string): Promise<void>;
  /**
   * A client's publish over NOTIFY's limit: `pgws.notify($1, $2)`. Resolves false (nothing sent) when
   * the function is not installed or the bridge's role may not execute it.
   */
  publishLarge(channel: string, payload: string): Promise<boolean>;
  /**
   * The stored payload a reference names, only if it belongs to `channel` and is at most `maxBytes`
   * (checked in the query, so an oversized row is never pulled). Never rejects.
   */
  fetchPayload(id: string, channel: string, maxBytes: number): Promise<Fetched>;
  /** Round trips made for stored payloads so far (fetches, plus a check per unresolved one). */
  readonly payloadRoundTrips: number;
  /** Deletes stored payloads older than `ttlSeconds`, in small batches so fetches are not held up. */
  sweepPayloads(ttlSeconds: number): Promise<Swept>;
  /** Every revocation and the disconnects still kept, in one snapshot. Never rejects. */
  loadCutoffs(): Promise<Loaded>;
  /** One subject's revocation as committed now: `before` in ms since the epoch, undefined when none. Never rejects. */
  readRevocation(subject: string): Promise<Read<number | undefined>>;
  /** One disconnect by id, undefined when there is no such row (any more). Never rejects. */
  readDisconnect(id: number): Promise<Read<Disconnect | undefined>>;
  end(): Promise<void>;
}

/** A row of `pgws.disconnects`. */
export interface Disconnect {
  readonly id: number;
  readonly subject: string;
  readonly reason: string | undefined;
}

/** What {@link Queries.loadCutoffs} read: revocations as `[subject, before]` (ms since the epoch). */
export type Loaded = Read<{
  readonly revocations: readonly (readonly [string, number])[];
  readonly disconnects: readonly Disconnect[];
}>;

/** What a sweep did: rows deleted, or why it could not run (`missing`: pgws is not installed). */
export type Swept = { readonly ok: true; readonly deleted: number } | Unread;

// timestamptz as ms since the epoch, as a float8: postgres.js reads it as a number, ±Infinity included.
const EPOCH_MS = 'extract(epoch FROM before) * 1000';
const disconnectOf = (row: Record<string, unknown>): Disconnect => ({
  id: Number(row['id']),
  subject: String(row['subject']),
  reason: typeof row['reason'] === 'string' ? row['reason'] : undefined,
});
// A batch deletes in tens of milliseconds even for large rows, so a fetch queued behind it waits little.
const SWEEP_BATCH = 100;

/** Settings both of the bridge's connections share. */
export const CONNECTION_COMMON = {
  fetch_types: false,
  onnotice: () => {},
  connection: { application_name: 'pg-notify-ws' },
} as const;

/**
 * A connection held for the process's life (the LISTEN one, the replication one): never closed for idleness
 * or age, and TCP keepalive every 10 s finds a peer that vanished without a FIN (a partition) instead of
 * waiting hours.
 */
export const HELD_CONNECTION = {
  ...CONNECTION_COMMON,
  max: 1,
  idle_timeout: 0,
  max_lifetime: null,
  connect_timeout: 10,
  keep_alive: 10,
} as const;

/** Opens the query connection lazily (the first statement connects). `stopped` ends a sweep early. */
export function createQueries(url: string, stopped: () => boolean = () => false): Queries {
  const queries = postgres(url, { ...CONNECTION_COMMON, max: 1, idle_timeout: 30, connect_timeout: 10 });
  let roundTrips = 0;
  return {
    ...createArchive(queries),
    async notify(channel, payload) {
      const [row] = await queries`SELECT pg_notify(${channel}, ${payload}), pg_notification_queue_usage() AS usage`;
      return Number(row?.['usage'] ?? 0);
    },
    async publish(channel, payload) {
      await queries`SELECT pg_notify(${channel}, ${payload})`;
    },
    async publishLarge(channel, payload) {
      try {
        await queries`SELECT pgws.notify(${channel}, ${payload})`;
        return true;
      } catch (error) {
        const code = sqlState(error);
        if (code === FORBIDDEN || isNotInstalled(code)) return false;
        throw error;
      }
    },
    get payloadRoundTrips() {
      return roundTrips;
    },
    async fetchPayload(id, channel, maxBytes) {
      try {
        roundTrips += 1;
        const [row] = await queries`
          SELECT octet_length(payload) AS bytes, CASE WHEN octet_length(payload) <= ${maxBytes}::int THEN payload END AS payload
          FROM pgws.payloads WHERE id = ${id}::uuid AND channel = ${channel}`;
        if (row !== undefined) {
          const payload: unknown = row['payload'];
          if (typeof payload === 'string') return { ok: true, payload };
          return { ok: false, reason: 'too_large', bytes: Number(row['bytes']) };
        }
        // Rare (a forged or expired reference): a second round trip tells which.
        roundTrips += 1;
        const [other] = await queries`SELECT 1 FROM pgws.payloads WHERE id = ${id}::uuid`;
        return { ok: false, reason: other === undefined ? 'reference_missing' : 'reference_forged' };
      } catch (error) {
        // Without pgws there is no row a reference could name.
        if (isNotInstalled(sqlState(error))) return { ok: false, reason: 'reference_missing' };
        return { ok: false, reason: 'reference_failed', error };
      }
    },
    async sweepPayloads(ttlSeconds) {
      let deleted = 0;
      try {
        for (;;) {
          // SKIP LOCKED: several bridges (workers, instances) sweep side by side without waiting on each other.
          const result = await queries`
            DELETE FROM pgws.payloads WHERE id IN (
              SELECT id FROM pgws.payloads WHERE created_at < clock_timestamp() - make_interval(secs => ${ttlSeconds}::int)
              LIMIT ${SWEEP_BATCH}::int FOR UPDATE SKIP LOCKED)`;
          deleted += result.count;
          if (result.count < SWEEP_BATCH || stopped()) return { ok: true, deleted };
        }
      } catch (error) {
        return unread(error);
      }
    },
    // One statement, so one snapshot: no revoke or disconnect can fall between the two tables.
    loadCutoffs: () =>
      read(async () => {
        const rows = await queries.unsafe(
          `SELECT subject, (${EPOCH_MS})::float8 AS before, NULL::bigint AS id, NULL::text AS reason FROM pgws.revocations
           UNION ALL
           SELECT subject, NULL, id, reason FROM pgws.disconnects
           WHERE made_at > clock_timestamp() - make_interval(secs => ${DISCONNECT_KEEP_SECONDS})`,
        );
        const revocations: [string, number][] = [];
        const disconnects: Disconnect[] = [];
        for (const row of rows) {
          if (row['id'] === null) revocations.push([String(row['subject']), Number(row['before'])]);
          else disconnects.push(disconnectOf(row));
        }
        return { revocations, disconnects };
      }),
    readRevocation: (subject) =>
      read(async () => {
        const [row] = await queries.unsafe(
          `SELECT (${EPOCH_MS})::float8 AS before FROM pgws.revocations WHERE subject = $1`,
          [subject],
        );
        return row === undefined ? undefined : Number(row['before']);
      }),
    readDisconnect: (id) =>
      read(async () => {
        const [row] = await queries`SELECT id, subject, reason FROM pgws.disconnects WHERE id = ${id}::bigint`;
        return row === undefined ? undefined : disconnectOf(row);
      }),
    end: () => queries.end({ timeout: 2 }),
  };
}

/** A postgres.js client, as {@link connectSql} hands one out. */
export type Sql = postgres.Sql;

/**
 * A postgres.js client of the caller's own on `url` (the test kit's `bridge.sql`), for the statements a
 * test runs: migrations, writes, NOTIFYs. Never the bridge's connections; postgres.js's defaults otherwise.
 */
export function connectSql(url: string): Sql {
  return postgres(url, { onnotice: () => {}, connection: { application_name: 'pg-notify-ws testing' } });
}

/** A short-lived connection for the command-line tools (`bun run trigger`), not for the bridge. */
export interface AdminConnection {
  /** One statement with bound parameters (`$1`, ...); its rows. */
  rows(text: string, parameters?: readonly string[]): Promise<Record<string, unknown>[]>;
  /** SQL text run as one simple-protocol query: several statements, one implicit transaction. */
  script(text: string): Promise<void>;
  end(): Promise<void>;
}

/** Opens an {@link AdminConnection}; the first query connects. */
export function connectAdmin(url: string): AdminConnection {
  const sql = postgres(url, {
    max: 1,
    fetch_types: false,
    onnotice: () => {},
    connect_timeout: 10,
    connection: { application_name: 'pg-notify-ws' },
  });
  return {
    rows: async (text, parameters = []) => [...(await sql.unsafe(text, [...parameters]))],
    script: async (text) => void (await sql.unsafe(text).simple()),
    end: () => sql.end({ timeout: 2 }),
  };
}
