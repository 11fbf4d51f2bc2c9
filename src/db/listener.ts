/**
 * The LISTEN side of PostgreSQL: a single dedicated LISTEN connection for every channel and every client
 * of the instance (workers reach it through the primary, `cluster/`), with the query connection of
 * `queries.ts` beside it. Also the command-line tools' short-lived connection.
 *
 * Why not postgres.js `sql.listen`: on a lost connection it re-LISTENs once and swallows the error,
 * so a database that stays down for longer than one connect attempt leaves it listening on nothing
 * while looking healthy. Here the connection is a `max: 1` postgres.js client whose `onnotify` and
 * `onclose` hooks we own, and reconnection retries forever with capped exponential backoff and jitter.
 */
import postgres from 'postgres';
import type { Logger } from '../observe/log.ts';
import type { Position, Snapshot } from '../protocol/hub.ts';
import { backoffDelay } from './backoff.ts';
import { CONNECTION_COMMON, createQueries, type Queries } from './queries.ts';

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
  state(state: ListenerState, epochs?: (channel: string) => string | undefined): void;
  /**
   * In a worker: a notification the primary already validated and numbered (`frame` is the plain-mode
   * frame, `at` its position). `state`'s `epochs` then name the epoch each channel starts after a loss.
   */
  delivered?(channel: string, frame: string, at: Position): void;
}

/**
 * An `acquire` refused because the instance already LISTENs `max_channels` distinct channels (a worker
 * learns it from the primary, which counts for the whole instance).
 */
export class ChannelLimitError extends Error {
  constructor(readonly maxChannels: number) {
    super(`channel limit reached (${maxChannels} distinct channels)`);
    this.name = 'ChannelLimitError';
  }
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
  /**
   * Called when a channel gets its first reference (pinned ones at once): it is about to be LISTENed. A
   * worker's listener passes the primary's stream for the channel, to follow from there.
   */
  onListen?: (channel: string, from?: Snapshot) => void;
  /** Called when a channel's last reference goes (it is UNLISTENed), or its LISTEN failed. */
  onUnlisten?: (channel: string) => void;
  /** Channels held for the bridge itself (workers' probe channels), not counted in `channelCount`. */
  isPrivate?: (channel: string) => boolean;
  /**
   * `[server] max_channels`: an `acquire` that would LISTEN one more channel than this rejects with
   * {@link ChannelLimitError}. The one place the limit is enforced for the connection (admission and
   * subscribe check it earlier only to refuse before waiting); unlimited by default.
   */
  maxChannels?: number;
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
  /** The query connection beside it: probes, publishes and stored payloads. */
  readonly queries: Queries;
  stop(): Promise<void>;
}

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
  for (const channel of options.pinned ?? []) {
    refs.set(channel, { count: 1, ready: Promise.resolve() });
    options.onListen?.(channel);
  }
  let state: ListenerState = 'connecting';
  let failures = 0;
  let retry: Timer | undefined;
  let attempting = false;
  let generation = 0;
  let privates = 0;

  const listenOptions: postgres.Options<Record<string, never>> & {
    onnotify: (channel: string, payload: string) => void;
  } = {
    ...CONNECTION_COMMON,
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
  const queries = createQueries(options.url, () => state === 'stopped');

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

  function forget(channel: string): void {
    refs.delete(channel);
    if (options.isPrivate?.(channel)) privates -= 1;
    options.onUnlisten?.(channel);
  }

  function release(channel: string): void {
    const entry = refs.get(channel);
    if (entry === undefined) return;
    entry.count -= 1;
    if (entry.count > 0) return;
    forget(channel);
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
      return refs.size - privates;
    },
    has: (channel) => refs.has(channel),
    async acquire(channel, timeoutMs = ACQUIRE_TIMEOUT_MS) {
      if (state !== 'up') throw new Error(`database is ${state}`);
      let entry = refs.get(channel);
      if (entry === undefined) {
        const { maxChannels = Number.POSITIVE_INFINITY } = options;
        if (refs.size - privates >= maxChannels && !options.isPrivate?.(channel))
          throw new ChannelLimitError(maxChannels);
        const ready = sql.unsafe(`LISTEN ${quote(channel)}`).then(() => undefined);
        entry = { count: 0, ready };
        refs.set(channel, entry);
        if (options.isPrivate?.(channel)) privates += 1;
        options.onListen?.(channel);
        // A failed LISTEN forgets the channel, so the next subscriber tries afresh.
        ready.catch(() => {
          if (refs.get(channel)?.ready !== ready) return;
          forget(channel);
        });
      }
      entry.count += 1;
      const held = entry;
      await awaitListen(held.ready, timeoutMs, () => refs.get(channel) === held && release(channel));
    },
    release,
    async listening() {
      const rows = await sql`SELECT pg_listening_channels() AS channel`;
      return rows.map((row) => String(row['channel']));
    },
    queries,
    async stop() {
      setState('stopped');
      clearTimeout(retry);
      await Promise.allSettled([sql.end({ timeout: 2 }), queries.end()]);
    },
  };
}

/**
 * Waits for one subscriber's LISTEN; on failure or after `timeoutMs`, `undo` drops the subscriber's
 * reference (a hung connection must not leave it counted) and the error is thrown on.
 */
export async function awaitListen(ready: Promise<void>, timeoutMs: number, undo: () => void): Promise<void> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`LISTEN did not complete within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([ready, timeout]);
  } catch (error) {
    undo();
    throw error;
  } finally {
    clearTimeout(timer);
  }
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
