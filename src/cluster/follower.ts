/**
 * A worker's listener (`[server] workers > 1`): the same {@link Listener} the bridge uses in the primary,
 * but its LISTENs are the primary's, asked for over IPC, and what arrives is already validated and
 * numbered there. Channels are reference-counted by the same registry as in `db/listener.ts`, so the primary sees one
 * `listen` per channel per worker, however many of the worker's clients hold it.
 *
 * Publishes and the readiness probe go through the worker's own query connection: the canary's NOTIFY
 * leaves from here and must come back through the primary's LISTEN connection and the IPC channel, so a
 * worker is ready only when that whole path works.
 */

import type { Cutoff } from '../auth/revocations.ts';
import type { SubjectSlots } from '../auth/slots.ts';
import { type Clock, systemClock } from '../base/clock.ts';
import { ChannelLimitError } from '../base/errors.ts';
import type { Logger } from '../base/log.ts';
import { within } from '../base/timeout.ts';
import type { Listener, ListenerEvents, ListenerState } from '../db/listener.ts';
import type { Queries } from '../db/queries.ts';
import { createRegistry, type Held } from '../db/registry.ts';
import type { Position, Snapshot } from '../protocol/history.ts';
import { workerSlots } from './claims.ts';
import type { ToPrimary, ToWorker } from './messages.ts';

/** Options of {@link createFollower}. */
export interface FollowerOptions {
  send(message: ToPrimary): void;
  queries: Queries;
  /** This worker's private probe channel, LISTENed by the primary for it. */
  probeChannel: string;
  onListen(channel: string, from: Snapshot): void;
  onUnlisten(channel: string): void;
  /** This worker's metrics for the primary's aggregate (prom-client's JSON form). */
  sample(): Promise<unknown>;
  /** Whether `[auth] max_connections_per_subject` is set: slots are then claimed from the primary. */
  limited: boolean;
  log: Logger;
  /** Times the wait for a scrape's answer (the real clock by default). */
  clock?: Clock | undefined;
}

/** What a follower reports: a listener's events, plus what the primary numbered. */
export interface FollowerEvents extends ListenerEvents {
  /**
   * A notification the primary already validated and numbered: `frame` is the plain-mode frame, `at` its
   * position. (`state`'s `epochs` name the epoch each channel starts after a loss.)
   */
  delivered(channel: string, frame: string, at: Position): void;
  /** A cut-off the primary read from the control channel. */
  cutoff(cutoff: Cutoff): void;
  /** A durable channel's rows up to `at.seq` are gone unread: its subscribers get a `gap`. */
  gap(channel: string, at: Position): void;
}

/** The worker's listener, fed by the primary's messages through `receive`. */
export interface Follower extends Listener {
  start(events: FollowerEvents): void;
  receive(message: ToWorker): void;
  /** The whole server's /metrics text, gathered by the primary. */
  scrape(byWorker: boolean): Promise<string>;
  /** Slots of `max_connections_per_subject`, claimed from the primary, which counts for the instance. */
  readonly slots: SubjectSlots;
  /** The primary's replication connection (`[database] ingest = "replication"`), for this worker's `/readyz`. */
  readonly ingest: { readonly state: 'up' | 'down'; readonly ready: boolean };
}

interface Entry extends Held {
  /** The primary has answered its `listen` (pinned ones need none). */
  answered: boolean;
}

// The primary LISTENs within its own 5 s bound; this covers the IPC round trip on a loaded machine too.
const ACQUIRE_TIMEOUT_MS = 7000;
const SCRAPE_TIMEOUT_MS = 3000;

/** Creates the follower; `start` says hello to the primary. */
export function createFollower(options: FollowerOptions): Follower {
  const { log, clock = systemClock } = options;
  let events: FollowerEvents | undefined;
  let state: ListenerState = 'connecting';
  let generation = 0;
  let ingestReady = true;
  const asked = new Map<number, { channel: string; entry: Entry; settle: (error?: Error) => void }>();
  const scrapes = new Map<number, (text: string) => void>();
  let nextId = 0;
  const slots = workerSlots({ limited: options.limited, send: options.send, log, clock });
  const refs = createRegistry<Entry>({
    open(channel) {
      const id = ++nextId;
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const entry: Entry = { count: 0, ready: promise, answered: false };
      asked.set(id, { channel, entry, settle: (error) => (error === undefined ? resolve() : reject(error)) });
      // Nobody may be awaiting it when it fails (every subscriber already gave up).
      promise.catch(() => {});
      options.send({ t: 'listen', id, channel });
      return entry;
    },
    closed(channel, entry, why) {
      if (why === 'failed') return;
      options.onUnlisten(channel);
      // An answer still on its way sends the `unlisten` when it comes (see `listened`).
      if (entry.answered) options.send({ t: 'unlisten', channel });
    },
  });

  const setState = (next: ListenerState, epochs?: ReadonlyMap<string, string>) => {
    if (next === state || state === 'stopped') return;
    state = next;
    if (next === 'up') generation += 1;
    events?.state(next, epochs === undefined ? undefined : (channel) => epochs.get(channel));
  };

  function listened(message: Extract<ToWorker, { t: 'listened' }>): void {
    const request = asked.get(message.id);
    if (request === undefined) return;
    asked.delete(message.id);
    const { channel, entry } = request;
    entry.answered = true;
    const current = refs.get(channel) === entry;
    if (message.snapshot === undefined) {
      refs.fail(channel, entry);
      const { maxChannels, error = 'the primary could not LISTEN' } = message;
      request.settle(maxChannels === undefined ? new Error(error) : new ChannelLimitError(maxChannels));
      return;
    }
    // Abandoned while the primary was LISTENing (every subscriber left, or it timed out): give it back.
    if (!current) {
      options.send({ t: 'unlisten', channel });
      request.settle(new Error('abandoned before the primary answered'));
      return;
    }
    options.onListen(channel, message.snapshot);
    request.settle();
  }

  return {
    get state() {
      return state;
    },
    get generation() {
      return generation;
    },
    ingest: {
      get state() {
        return ingestReady ? ('up' as const) : ('down' as const);
      },
      get ready() {
        return ingestReady;
      },
    },
    get reconnects() {
      return Math.max(0, generation - 1);
    },
    get channelCount() {
      return refs.size;
    },
    queries: options.queries,
    slots,
    start(listenerEvents) {
      if (events !== undefined) return;
      events = listenerEvents;
      options.send({ t: 'hello', probe: options.probeChannel });
    },
    has: (channel) => refs.has(channel),
    async acquire(channel, timeoutMs = ACQUIRE_TIMEOUT_MS) {
      if (state !== 'up') throw new Error(`database is ${state}`);
      await refs.acquire(channel, timeoutMs);
    },
    release: (channel) => refs.release(channel),
    listening: async () => refs.channels(),
    receive(message) {
      switch (message.t) {
        case 'welcome':
          for (const [channel, snapshot] of message.pinned) {
            refs.pin(channel, { count: 1, ready: Promise.resolve(), answered: true });
            options.onListen(channel, snapshot);
          }
          return setState(message.state);
        case 'state':
          return setState(message.state, message.epochs === undefined ? undefined : new Map(message.epochs));
        case 'listened':
          return listened(message);
        case 'deliver':
          for (const [channel, frame, epoch, seq] of message.batch) events?.delivered(channel, frame, { epoch, seq });
          // Handed to the sockets (Bun buffers what they have not read): the primary may count it as read.
          return options.send({ t: 'ack', bytes: message.bytes });
        case 'ingest':
          ingestReady = message.ready;
          return;
        case 'gap':
          return events?.gap(message.channel, { epoch: message.epoch, seq: message.seq });
        case 'probe':
          return events?.notification(options.probeChannel, message.token);
        case 'sample':
          void options.sample().then(
            (metrics) => options.send({ t: 'sampled', id: message.id, metrics }),
            (error: unknown) => log.error('metrics sample failed', { error }),
          );
          return;
        case 'scraped':
          return scrapes.get(message.id)?.(message.text);
        case 'claimed':
          return slots.answered(message.id, message.ok);
        case 'cutoff':
          return events?.cutoff(message.cutoff);
      }
    },
    async scrape(byWorker) {
      const id = ++nextId;
      const { promise, resolve } = Promise.withResolvers<string>();
      scrapes.set(id, resolve);
      options.send({ t: 'scrape', id, byWorker });
      try {
        return await within(
          promise,
          SCRAPE_TIMEOUT_MS,
          () => {
            throw new Error('the primary did not answer the metrics request');
          },
          clock,
        );
      } finally {
        scrapes.delete(id);
      }
    },
    async stop() {
      setState('stopped');
      await options.queries.end();
    },
  };
}
