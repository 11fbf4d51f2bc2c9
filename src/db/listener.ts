/**
 * The LISTEN side of PostgreSQL: a single dedicated LISTEN connection for every channel and every client
 * of the instance (workers reach it through the primary, `cluster/`), with the query connection of
 * `queries.ts` beside it.
 *
 * Why not postgres.js `sql.listen`: on a lost connection it re-LISTENs once and swallows the error,
 * so a database that stays down for longer than one connect attempt leaves it listening on nothing
 * while looking healthy. Here the connection is a `max: 1` postgres.js client whose `onnotify` and
 * `onclose` hooks we own, and reconnection retries forever with capped exponential backoff and jitter.
 */
import postgres from 'postgres';
import { type ConnectionState, createReconnect } from '../base/backoff.ts';
import { ChannelLimitError } from '../base/errors.ts';
import type { Logger } from '../base/log.ts';
import { createQueries, HELD_CONNECTION, type Queries } from './queries.ts';
import { createRegistry, type Held } from './registry.ts';

/** `connecting` before the first success, `down` after a loss until the next success. */
export type ListenerState = ConnectionState;

/** What the listener tells the rest of the bridge. */
export interface ListenerEvents {
  /** Every notification on a channel someone listens to, in commit order. */
  notification(channel: string, payload: string): void;
  /**
   * The state changed; called once per change. `down` is sent the moment the connection is lost, so
   * clients can be told then, not when it comes back. Each `up` starts a new {@link Listener.generation}.
   * `epochs`, from a worker's follower only, names the epoch each channel starts after a loss.
   */
  state(state: ListenerState, epochs?: (channel: string) => string | undefined): void;
}

/** Options for {@link createListener}. */
export interface ListenerOptions {
  url: string;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** A private channel that is always listened to (the readiness canary's). */
  probeChannel: string;
  /**
   * The bridge's control channel (cut-offs, `db/control.ts`), LISTENed with the probe on every connect,
   * before the state turns `up`: whatever is committed on it from then on arrives.
   */
  controlChannel?: string | undefined;
  /** Channels LISTENed from the first connect on, with or without subscribers (those keeping history). */
  pinned?: readonly string[];
  /** Called when a channel gets its first reference (pinned ones at once): it is about to be LISTENed. */
  onListen?: (channel: string) => void;
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
  const isPrivate = options.isPrivate ?? (() => false);
  const refs = createRegistry<Held>({
    open(channel) {
      const ready = sql.unsafe(`LISTEN ${quote(channel)}`).then(() => undefined);
      const entry = { count: 0, ready };
      if (isPrivate(channel)) privates += 1;
      options.onListen?.(channel);
      // A failed LISTEN forgets the channel, so the next subscriber tries afresh.
      ready.catch(() => refs.fail(channel, entry));
      return entry;
    },
    closed(channel, _entry, why) {
      if (isPrivate(channel)) privates -= 1;
      options.onUnlisten?.(channel);
      // A LISTEN that follows is pipelined after this on the same connection, so order holds.
      if (why === 'released' && reconnect.state === 'up') {
        sql
          .unsafe(`UNLISTEN ${quote(channel)}`)
          .catch((error: unknown) => log.debug('UNLISTEN failed', { channel, error }));
      }
    },
  });
  // A pinned channel holds one reference that is never released, so it is re-LISTENed on every connect.
  for (const channel of options.pinned ?? []) {
    refs.pin(channel, { count: 1, ready: Promise.resolve() });
    options.onListen?.(channel);
  }
  let generation = 0;
  let privates = 0;

  const listenOptions: postgres.Options<Record<string, never>> & {
    onnotify: (channel: string, payload: string) => void;
  } = {
    ...HELD_CONNECTION,
    onnotify: (channel, payload) => events?.notification(channel, payload),
    onclose: () => reconnect.lost(),
  };
  // `onnotify` is the hook postgres.js's own `sql.listen` is built on (parseOptions passes it to every
  // connection); its types omit it, hence the widened options object above.
  const sql = postgres(options.url, listenOptions);
  const queries = createQueries(options.url, () => reconnect.state === 'stopped');

  async function attempt(failures: number): Promise<boolean> {
    const channels = refs.channels();
    try {
      // One round trip re-LISTENs everything.
      const own =
        options.controlChannel === undefined ? [options.probeChannel] : [options.probeChannel, options.controlChannel];
      await sql.unsafe([...own, ...channels].map((c) => `LISTEN ${quote(c)}`).join('; '));
    } catch (error) {
      if (failures === 0 && reconnect.state !== 'stopped')
        log.error('database unreachable; retrying with backoff', { error });
      return false;
    }
    if (reconnect.state === 'stopped') return false;
    log.info(generation > 0 ? 'database connection restored' : 'database connected', { retries: failures });
    generation += 1;
    return true;
  }
  const reconnect = createReconnect({
    timing: options,
    attempt,
    onState: (state) => events?.state(state),
    onLost: () => log.warn('database connection lost; reconnecting'),
  });

  return {
    get state() {
      return reconnect.state;
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
      reconnect.start();
    },
    get channelCount() {
      return refs.size - privates;
    },
    has: (channel) => refs.has(channel),
    async acquire(channel, timeoutMs = ACQUIRE_TIMEOUT_MS) {
      if (reconnect.state !== 'up') throw new Error(`database is ${reconnect.state}`);
      const { maxChannels = Number.POSITIVE_INFINITY } = options;
      if (!refs.has(channel) && !isPrivate(channel) && refs.size - privates >= maxChannels)
        throw new ChannelLimitError(maxChannels);
      await refs.acquire(channel, timeoutMs);
    },
    release: (channel) => refs.release(channel),
    async listening() {
      const rows = await sql`SELECT pg_listening_channels() AS channel`;
      return rows.map((row) => String(row['channel']));
    },
    queries,
    async stop() {
      reconnect.stop();
      await Promise.allSettled([sql.end({ timeout: 2 }), queries.end()]);
    },
  };
}
