/**
 * The replication connection of `[database] ingest = "replication"`: one per instance (the primary with
 * workers), reading the logical replication of `pgws.messages` (pgoutput, publication `pgws_messages`) to
 * learn which rows of durable channels committed, instead of a NOTIFY from each writer.
 *
 * A TEMPORARY slot, made afresh on every connect: it lives and dies with the connection, so a bridge that
 * crashes or is partitioned away never leaves a slot behind holding WAL. It loses nothing: what commits before
 * the new slot's consistent point is in the table, which the reader catches up from on every `up`, and
 * everything after it is streamed. While up, a status update every few seconds lets the server recycle WAL.
 *
 * Why not postgres.js `sql.subscribe` (which also makes a temporary slot): on a lost connection it tries to
 * reconnect once, from its `onclose`, and a failure there is an unhandled rejection after which it never tries
 * again; it has no state to report for readiness, decodes every column including payloads, and reports a
 * missing privilege as a generic error. Here the client is a small one of our own, on a postgres.js connection
 * in replication mode, that reconnects forever with the backoff of `base/backoff.ts`, like `listener.ts`.
 */
import type { Duplex } from 'node:stream';
import postgres from 'postgres';
import { type ConnectionState, createReconnect } from '../base/backoff.ts';
import type { Logger } from '../base/log.ts';
import { createDecoder, type Lsn, readCopyData, statusUpdate } from './pgoutput.ts';
import { PUBLICATION, prepare, refusalOf } from './publication.ts';
import { HELD_CONNECTION } from './queries.ts';

/** As the listener's: `connecting` before the first success, `down` after a loss until the next one. */
export type ReplicationState = ConnectionState;

/** What the replication connection tells the bridge. */
export interface ReplicationEvents {
  /** Rows up to `seq` committed on `channel`; once per channel per transaction, in commit order. */
  committed(channel: string, seq: number): void;
  /** Each `up` streams from a new slot: rows committed before it are in the table only. */
  state(state: ReplicationState): void;
  /**
   * The database is not set up for replication; `message` says what to change. `first`: it was never up, so
   * the bridge cannot start (later ones are logged and retried, like a lost connection).
   */
  refused(message: string, first: boolean): void;
}

/** Options for {@link createReplication}. */
export interface ReplicationOptions {
  url: string;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  log: Logger;
  /** How often a status update confirms progress and asks for a reply; no reply in three means a dead peer. */
  feedbackMs?: number;
}

/** The replication connection. */
export interface Replication {
  readonly state: ReplicationState;
  /** Connects and keeps reconnecting, reporting to `events`. */
  start(events: ReplicationEvents): void;
  stop(): Promise<void>;
}

const FEEDBACK_MS = 5000;

/** A connection in replication mode (`replication=database`: SQL and replication commands). */
const connect = (url: string, onclose: () => void): postgres.Sql =>
  postgres(url, {
    ...HELD_CONNECTION,
    connection: { application_name: 'pg-notify-ws replication', replication: 'database' },
    onclose,
  } as postgres.Options<Record<string, never>>);

/**
 * One look at what replication needs, without a slot, for a refusal at startup: its line, or undefined when
 * all is set and also when the database does not answer (the bridge's connection then retries and logs).
 */
export async function checkReplication(url: string): Promise<string | undefined> {
  const sql = connect(url, () => {});
  const role = String(sql.options.user);
  try {
    return await prepare((statement) => sql.unsafe(statement).simple(), role);
  } catch (error) {
    return refusalOf(error, role);
  } finally {
    await sql.end({ timeout: 0 }).catch(() => {});
  }
}

/** Creates the connection without connecting; {@link Replication.start} connects. */
export function createReplication(options: ReplicationOptions): Replication {
  const { log } = options;
  const feedbackMs = options.feedbackMs ?? FEEDBACK_MS;
  let events: ReplicationEvents | undefined;
  let everUp = false;
  let refusing: string | undefined;
  let feedback: Timer | undefined;
  // The connection of the current attempt; a loss reported by an older one is ignored.
  let current: postgres.Sql | undefined;

  function drop(sql: postgres.Sql | undefined): void {
    clearInterval(feedback);
    feedback = undefined;
    if (sql === current) current = undefined;
    void sql?.end({ timeout: 0 }).catch(() => {});
  }

  // While an attempt runs, its own failure is reported by the attempt: a close then is not a loss.
  let attempting = false;
  function lost(sql: postgres.Sql): void {
    if (sql !== current || attempting) return;
    drop(sql);
    reconnect.lost();
  }

  function refuse(message: string): void {
    if (refusing !== message) log.error(message);
    refusing = message;
    events?.refused(message, !everUp);
  }

  async function attempt(failures: number): Promise<boolean> {
    attempting = true;
    const sql: postgres.Sql = connect(options.url, () => lost(sql));
    current = sql;
    const role = String(sql.options.user);
    try {
      const run = (statement: string) => sql.unsafe(statement).simple();
      const refusal = await prepare(run, role);
      if (refusal !== undefined) throw Object.assign(new Error(refusal), { refusal });
      const slot = `pgws_${process.pid}_${crypto.randomUUID().slice(0, 8)}`;
      await run(`CREATE_REPLICATION_SLOT ${slot} TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT`);
      const stream = (await sql
        .unsafe(`START_REPLICATION SLOT ${slot} LOGICAL 0/0 (proto_version '1', publication_names '${PUBLICATION}')`)
        .writable()) as unknown as Duplex;
      follow(sql, stream);
    } catch (error) {
      attempting = false;
      drop(sql);
      if (reconnect.state === 'stopped') return false;
      const refusal = (error as { refusal?: string }).refusal ?? refusalOf(error, role);
      if (refusal !== undefined) refuse(refusal);
      else if (failures === 0) log.error('replication connection failed; retrying with backoff', { error });
      return false;
    }
    attempting = false;
    if (reconnect.state === 'stopped') {
      drop(sql);
      return false;
    }
    log.info(everUp ? 'replication connection restored' : 'replication connected', { retries: failures });
    everUp = true;
    refusing = undefined;
    return true;
  }
  const reconnect = createReconnect({
    timing: options,
    attempt,
    onState: (state) => events?.state(state),
    onLost: () => log.warn('replication connection lost; reconnecting'),
  });

  /** Reads the stream: commits become `committed` events, keepalives and a timer keep the slot moving. */
  function follow(sql: postgres.Sql, stream: Duplex): void {
    const decode = createDecoder();
    const pending = new Map<string, number>();
    let confirmed: Lsn = 0n;
    let inTransaction = false;
    let heardAt = performance.now();
    const send = (replyRequested: boolean) => {
      if (sql === current) stream.write(Buffer.from(statusUpdate(confirmed, Date.now(), replyRequested)));
    };
    stream.on('error', () => {});
    stream.on('close', () => lost(sql));
    stream.on('data', (chunk: Uint8Array) => {
      heardAt = performance.now();
      const copied = readCopyData(chunk);
      if (copied.kind === 'keepalive') {
        // Everything before the server's send position has reached us; inside a transaction it is not done.
        if (!inTransaction && copied.end > confirmed) confirmed = copied.end;
        if (copied.replyRequested) send(false);
        return;
      }
      if (copied.kind !== 'xlog') return;
      const change = decode(copied.data);
      if (change.kind === 'begin') {
        inTransaction = true;
        pending.clear();
      } else if (change.kind === 'insert' && change.schema === 'pgws' && change.table === 'messages') {
        const { channel, seq } = change.row;
        if (typeof channel === 'string' && typeof seq === 'string')
          pending.set(channel, Math.max(Number(seq), pending.get(channel) ?? 0));
      } else if (change.kind === 'commit') {
        inTransaction = false;
        confirmed = change.end;
        for (const [channel, seq] of pending) events?.committed(channel, seq);
        pending.clear();
      }
    });
    // The status update both lets the server recycle WAL and, with its reply, proves the connection alive: a
    // peer gone without a FIN is noticed within three intervals, not after TCP gives up.
    feedback = setInterval(() => {
      if (performance.now() - heardAt > feedbackMs * 3) {
        log.warn('replication connection silent; reconnecting', { silentMs: Math.round(performance.now() - heardAt) });
        return lost(sql);
      }
      send(true);
    }, feedbackMs);
  }

  return {
    get state() {
      return reconnect.state;
    },
    start(replicationEvents) {
      if (events !== undefined) return;
      events = replicationEvents;
      reconnect.start();
    },
    async stop() {
      reconnect.stop();
      clearInterval(feedback);
      const sql = current;
      current = undefined;
      await sql?.end({ timeout: 0 }).catch(() => {});
    },
  };
}
