/**
 * The one file that talks to PostgreSQL: a single dedicated LISTEN connection for every channel and
 * every client, plus one small query connection for the readiness probe, publishes, and the stored
 * payloads of `pgws.notify` (fetch, sweep). Also the command-line tools' short-lived connection.
 *
 * Why not postgres.js `sql.listen`: on a lost connection it re-LISTENs once and swallows the error,
 * so a database that stays down for longer than one connect attempt leaves it listening on nothing
 * while looking healthy. Here the connection is a `max: 1` postgres.js client whose `onnotify` and
 * `onclose` hooks we own, and reconnection retries forever with capped exponential backoff and jitter.
 */
import postgres from 'postgres';
import type { Fetched } from '../channels/reference.ts';
import type { Logger } from '../observe/log.ts';
import { backoffDelay } from './backoff.ts';

/** `connecting` before the first success, `down` after a loss until the next success. */
export type ListenerState = 'connecting' | 'up' | 'down' | 'stopped';

/** What the listener tells the rest of the bridge. */
export interface ListenerEvents {
  /** Every notification on a channel someone listens to, in commit order. */
  notification(channel: string, payload: string): void;
  /**
   * The state changed; called once per change. `down` is sent the moment the connection is lost, so
   * clients can be told then, not when it comes back. Each `up` starts a new {@link Listener.generation}.
   */
  state(state: ListenerState): void;
}

/** Options for {@link createListener}. */
export interface ListenerOptions {
  url: string;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** A private channel that is always listened to (the readiness canary's). */
  probeChannel: string;
  /** Channels LISTENed from the first connect on, with or without subscribers (those keeping history). */
  pinned?: readonly string[];
  /** Called when a channel's last reference goes (it is UNLISTENed). */
  onUnlisten?: (channel: string) => void;
  log: Logger;
}

/** The LISTEN side of the bridge, reference-counted per channel. */
export interface Listener {
  readonly state: ListenerState;
  /** Counts successful (re)connects: a notification stream is continuous only within one generation. */
  readonly generation: number;
  /** Times the connection was restored after a loss. */
  readonly reconnects: number;
  /** Connects and keeps reconnecting, reporting to `events`; nothing happens before this is called. */
  start(events: ListenerEvents): void;
  /** Channels with at least one subscriber (each costs one LISTEN). */
  readonly channelCount: number;
  has(channel: string): boolean;
  /** Adds a subscriber; resolves once the LISTEN is in place. Rejects if the database is not up. */
  acquire(channel: string, timeoutMs?: number): Promise<void>;
  /** Removes a subscriber; the last one leaving UNLISTENs. */
  release(channel: string): void;
  /** The channels this session is LISTENing to, as PostgreSQL itself reports them. */
  listening(): Promise<string[]>;
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
  stop(): Promise<void>;
}

/** What a sweep did: rows deleted, or why it could not run (`missing`: pgws is not installed). */
export type Swept =
  | { readonly ok: true; readonly deleted: number }
  | { readonly ok: false; readonly reason: 'missing' | 'forbidden' | 'failed'; readonly error: unknown };

// PG SQLSTATEs: pgws (or a part of it) is not installed; the role lacks a privilege.
const NOT_INSTALLED = new Set(['3F000', '42P01', '42883']);
const FORBIDDEN = '42501';
const sqlState = (error: unknown) => (error as { code?: unknown } | undefined)?.code;
// A batch deletes in tens of milliseconds even for large rows, so a fetch queued behind it waits little.
const SWEEP_BATCH = 100;

// A LISTEN that takes longer means a hung connection; the client is refused rather than left waiting.
const ACQUIRE_TIMEOUT_MS = 5000;

/** PG: identifiers are quoted by doubling `"`; names never reach SQL any other way. */
const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Creates the listener without connecting: {@link Listener.start} connects, once everything its events
 * reach exists, so no callback can run against a half-built bridge.
 */
export function createListener(options: ListenerOptions): Listener {
  const { log } = options;
  let events: ListenerEvents | undefined;
  const refs = new Map<string, { count: number; ready: Promise<void> }>();
  // A pinned channel holds one reference that is never released, so it is re-LISTENed on every connect.
  for (const channel of options.pinned ?? []) refs.set(channel, { count: 1, ready: Promise.resolve() });
  let state: ListenerState = 'connecting';
  let failures = 0;
  let retry: Timer | undefined;
  let attempting = false;
  let generation = 0;
  let roundTrips = 0;

  const common = { fetch_types: false, onnotice: () => {}, connection: { application_name: 'pg-notify-ws' } } as const;
  const listenOptions: postgres.Options<Record<string, never>> & {
    onnotify: (channel: string, payload: string) => void;
  } = {
    ...common,
    max: 1,
    idle_timeout: 0,
    max_lifetime: null,
    connect_timeout: 10,
    // Seconds; finds a peer that vanished without a FIN (a partition) instead of waiting hours.
    keep_alive: 10,
    onnotify: (channel, payload) => events?.notification(channel, payload),
    onclose: () => lost(),
  };
  // `onnotify` is the hook postgres.js's own `sql.listen` is built on (parseOptions passes it to every
  // connection); its types omit it, hence the widened options object above.
  const sql = postgres(options.url, listenOptions);
  const queries = postgres(options.url, { ...common, max: 1, idle_timeout: 30, connect_timeout: 10 });

  const setState = (next: ListenerState) => {
    if (state === next) return;
    state = next;
    events?.state(next);
  };

  function lost(): void {
    if (state === 'stopped' || attempting) return;
    if (state === 'up') {
      log.warn('database connection lost; reconnecting');
      setState('down');
    }
    schedule();
  }

  function schedule(): void {
    if (retry !== undefined || state === 'stopped') return;
    const delay = backoffDelay(failures, options.reconnectMinMs, options.reconnectMaxMs, Math.random);
    retry = setTimeout(() => {
      retry = undefined;
      void attempt();
    }, delay);
  }

  async function attempt(): Promise<void> {
    attempting = true;
    const channels = [...refs.keys()];
    try {
      // One round trip re-LISTENs everything.
      await sql.unsafe([options.probeChannel, ...channels].map((c) => `LISTEN ${quote(c)}`).join('; '));
    } catch (error) {
      attempting = false;
      if (state === 'stopped') return;
      if (failures === 0) log.error('database unreachable; retrying with backoff', { error });
      failures += 1;
      if (state === 'connecting') setState('down');
      schedule();
      return;
    }
    attempting = false;
    if (state === 'stopped') return;
    log.info(generation > 0 ? 'database connection restored' : 'database connected', { retries: failures });
    generation += 1;
    failures = 0;
    setState('up');
  }

  function release(channel: string): void {
    const entry = refs.get(channel);
    if (entry === undefined) return;
    entry.count -= 1;
    if (entry.count > 0) return;
    refs.delete(channel);
    options.onUnlisten?.(channel);
    // A LISTEN that follows is pipelined after this on the same connection, so order holds.
    if (state === 'up') {
      sql
        .unsafe(`UNLISTEN ${quote(channel)}`)
        .catch((error: unknown) => log.debug('UNLISTEN failed', { channel, error }));
    }
  }

  return {
    get state() {
      return state;
    },
    get generation() {
      return generation;
    },
    get reconnects() {
      return Math.max(0, generation - 1);
    },
    start(listenerEvents) {
      if (events !== undefined) return;
      events = listenerEvents;
      void attempt();
    },
    get channelCount() {
      return refs.size;
    },
    has: (channel) => refs.has(channel),
    async acquire(channel, timeoutMs = ACQUIRE_TIMEOUT_MS) {
      if (state !== 'up') throw new Error(`database is ${state}`);
      let entry = refs.get(channel);
      if (entry === undefined) {
        const ready = sql.unsafe(`LISTEN ${quote(channel)}`).then(() => undefined);
        entry = { count: 0, ready };
        refs.set(channel, entry);
        // A failed LISTEN forgets the channel, so the next subscriber tries afresh.
        ready.catch(() => refs.get(channel)?.ready === ready && refs.delete(channel));
      }
      entry.count += 1;
      let timer: Timer | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`LISTEN did not complete within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([entry.ready, timeout]);
      } catch (error) {
        // Undo this subscriber's reference (a hung connection must not leave it counted).
        if (refs.get(channel) === entry) release(channel);
        throw error;
      } finally {
        clearTimeout(timer);
      }
    },
    release,
    async listening() {
      const rows = await sql`SELECT pg_listening_channels() AS channel`;
      return rows.map((row) => String(row['channel']));
    },
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
        const state = sqlState(error);
        if (state === FORBIDDEN || NOT_INSTALLED.has(String(state))) return false;
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
        if (NOT_INSTALLED.has(String(sqlState(error)))) return { ok: false, reason: 'reference_missing' };
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
          if (result.count < SWEEP_BATCH || state === 'stopped') return { ok: true, deleted };
        }
      } catch (error) {
        const code = String(sqlState(error));
        const reason = NOT_INSTALLED.has(code) ? 'missing' : code === FORBIDDEN ? 'forbidden' : 'failed';
        return { ok: false, reason, error };
      }
    },
    async stop() {
      setState('stopped');
      clearTimeout(retry);
      await Promise.allSettled([sql.end({ timeout: 2 }), queries.end({ timeout: 2 })]);
    },
  };
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
