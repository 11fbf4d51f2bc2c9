/**
 * Multiplexed delivery, per channel: the channel's stream (position and history) and its topics, one per
 * distinct filter (`topics.ts`). Each notification is numbered once, encoded once, and handed to `publish`
 * once per topic whose filter matches, so fan-out stays native whatever the number of subscribers.
 *
 * A stream lives exactly as long as its channel is LISTENed (`open` and `close` follow the listener),
 * since that is what continuity means (docs/PROTOCOL.md "Positions"). In a worker the streams follow the
 * primary's: `open` takes the primary's snapshot and `deliver` the primary's numbering. A durable channel's
 * stream is the database's (docs/PROTOCOL.md "Durable channels"): the hub never numbers it, a lost LISTEN
 * connection does not break it, and its history is only a cache of the newest rows.
 *
 * Pure: `publish` (the server's topic fan-out) is passed to each call that sends.
 */

import { createStream, type Position, type Resume, type Since, type Snapshot, type Stream } from './history.ts';
import { encodeGap, encodeMessage, encodeUnnumbered } from './replies.ts';
import { createTopics, type Membership, type Publish, type TopicFilter, type Topics } from './topics.ts';

export type { Membership, Publish, TopicFilter } from './topics.ts';

interface ChannelState {
  readonly channelJson: string;
  /** Messages the stream keeps (its history, or a durable channel's cache). */
  readonly capacity: number;
  readonly durable: boolean;
  readonly stream: Stream;
  readonly topics: Topics;
}

/** Options of {@link createHub}. */
export interface HubOptions {
  /** Messages kept per channel for resume (0 = none): its history, or the cache of a durable channel. */
  history: (channel: string) => number;
  /** Whether the database numbers the channel (`durable`); none by default. */
  durable?: (channel: string) => boolean;
  /** Where epochs come from (the process-wide source by default). */
  epochs?: () => string;
}

/** A delivery that takes no seq: a plain NOTIFY on a durable channel, as the primary hands it to workers. */
export const UNNUMBERED: Position = { epoch: '', seq: 0 };

/** Held history of one channel, for /metrics. */
export interface HistoryHeld {
  readonly channel: string;
  readonly messages: number;
  readonly bytes: number;
}

/** The multiplexed side of every channel. */
export interface Hub {
  /** The channel is LISTENed: its stream starts at a new epoch, or where `from` (the primary's) stands. */
  open(channel: string, from?: Snapshot): void;
  /** The channel is UNLISTENed: its stream is forgotten, so the next one starts a new epoch. */
  close(channel: string): void;
  /** The stream as a worker needs it to follow; the channel must be open. */
  snapshot(channel: string): Snapshot;
  /** Joins a subscription to its channel's topic for `filter`; the channel must be open. */
  join(channel: string, filter: TopicFilter | undefined): Membership;
  /** The reverse of `join`. */
  leave(channel: string, membership: Membership): void;
  /** The channel's current epoch and head; the channel must have been joined or pinned. */
  position(channel: string): Since;
  /** How many of the newest messages the channel holds now. */
  kept(channel: string): number;
  /** Every message after `since`, or not recovered (never a partial replay). */
  resume(channel: string, since: Since): Resume;
  /**
   * Numbers and fans out one delivered payload (`payloadJson` as clients get it); returns frames sent.
   * `at` is the numbering of the primary (in a worker) or of the database (a durable channel's row), followed
   * instead of numbering here; a message already held at `at` is not sent again. On a durable channel a
   * delivery without `at` (or at {@link UNNUMBERED}) is a plain NOTIFY: sent without a seq, never kept.
   * `payload` may be a function, called only when something here needs the text.
   */
  deliver(channel: string, payload: string | (() => string), publish: Publish, at?: Position): number;
  /** Whether the hub numbers the channel's messages itself (false on durable channels). */
  numbers(channel: string): boolean;
  /** A durable channel's stream stands at `at` (its position as the database holds it): nothing is sent. */
  rebase(channel: string, at: Position): void;
  /**
   * A durable channel's messages up to `at.seq` are gone before they were read: its stream moves to `at` and
   * every subscriber gets a `gap`. Returns how many gap frames were sent.
   */
  gap(channel: string, at: Position, publish: Publish): number;
  /**
   * Continuity is broken (the LISTEN connection was lost): every channel the hub numbers starts a new epoch
   * (the one `epochs` names, in a worker) and its subscribers get a `gap`; durable channels are read again
   * from the database, so they are left alone. Returns how many gap frames were sent.
   */
  broken(publish: Publish, epochs?: (channel: string) => string | undefined): number;
  /** Whether the channel is open here (so `deliver` has work to do). */
  has(channel: string): boolean;
  readonly subscriptions: number;
  readonly filterTopics: number;
  held(): HistoryHeld[];
}

/** Creates the hub. */
export function createHub(options: HubOptions): Hub {
  const channels = new Map<string, ChannelState>();
  const durable = options.durable ?? (() => false);
  let subscriptions = 0;
  let filterTopics = 0;

  const existing = (channel: string): ChannelState => {
    const entry = channels.get(channel);
    if (entry === undefined) throw new Error(`hub: channel ${JSON.stringify(channel)} is not held`);
    return entry;
  };
  const moveTo = (stream: Stream, at: Position) => {
    if (stream.epoch !== at.epoch || stream.head !== at.seq) stream.rebase(at.epoch, at.seq);
  };

  return {
    open(channel, from) {
      if (channels.has(channel)) return;
      const capacity = options.history(channel);
      const stream = createStream({ capacity, epochs: options.epochs });
      if (from !== undefined) {
        stream.rebase(from.epoch, from.head - from.entries.length);
        // Consecutive seqs ending at the head; a smaller history here keeps the newest of them.
        for (const [seq, payloadJson] of from.entries) stream.follow(from.epoch, seq, payloadJson);
        if (stream.head !== from.head) stream.rebase(from.epoch, from.head);
      }
      const topics = createTopics(channel);
      channels.set(channel, {
        channelJson: JSON.stringify(channel),
        capacity,
        durable: durable(channel),
        stream,
        topics,
      });
    },
    close(channel) {
      const entry = channels.get(channel);
      if (entry === undefined) return;
      channels.delete(channel);
      subscriptions -= entry.topics.members;
      filterTopics -= entry.topics.filters;
    },
    snapshot(channel) {
      const { stream } = existing(channel);
      const held = stream.resume({ epoch: stream.epoch, seq: stream.head - stream.size });
      const entries = held.recovered ? held.entries.map((entry) => [entry.seq, entry.payloadJson] as const) : [];
      return { epoch: stream.epoch, head: stream.head, entries };
    },
    join(channel, filter) {
      const { topics } = existing(channel);
      const filters = topics.filters;
      const membership = topics.join(filter);
      subscriptions += 1;
      filterTopics += topics.filters - filters;
      return membership;
    },
    leave(channel, membership) {
      // A channel closed under its subscribers (they were counted out then) has nothing left to undo.
      const entry = channels.get(channel);
      if (entry === undefined) return;
      subscriptions -= 1;
      if (entry.topics.leave(membership)) filterTopics -= 1;
    },
    position(channel) {
      const { stream } = existing(channel);
      return { epoch: stream.epoch, seq: stream.head };
    },
    kept: (channel) => existing(channel).stream.size,
    resume: (channel, since) => existing(channel).stream.resume(since),
    deliver(channel, payload, publish, at) {
      const entry = channels.get(channel);
      if (entry === undefined) return 0;
      const { stream, topics } = entry;
      const unnumbered = entry.durable && (at === undefined || at.seq === 0);
      if (at !== undefined && !unnumbered && at.epoch === stream.epoch && at.seq <= stream.head) return 0;
      // A channel only plain sockets use, without history, just counts: nothing to encode.
      const idle = topics.idle && (entry.capacity === 0 || unnumbered);
      const payloadJson = idle ? '' : typeof payload === 'string' ? payload : payload();
      // History keeps the text only: replays parse it again, so held memory is the payloads alone.
      let seq = 0;
      if (unnumbered) {
        // docs/PROTOCOL.md: a plain NOTIFY on a durable channel takes no seq and is never replayed.
      } else if (at === undefined) seq = stream.append(payloadJson, undefined);
      else {
        stream.follow(at.epoch, at.seq, payloadJson);
        seq = at.seq;
      }
      if (idle) return 0;
      const frame = unnumbered
        ? encodeUnnumbered(entry.channelJson, payloadJson)
        : encodeMessage(entry.channelJson, seq, payloadJson);
      return topics.send(frame, topics.filtered ? JSON.parse(payloadJson) : undefined, publish);
    },
    numbers: (channel) => !existing(channel).durable,
    rebase(channel, at) {
      const entry = channels.get(channel);
      if (entry !== undefined) moveTo(entry.stream, at);
    },
    gap(channel, at, publish) {
      const entry = channels.get(channel);
      if (entry === undefined) return 0;
      moveTo(entry.stream, at);
      return entry.topics.sendAll(encodeGap(channel, at.epoch, at.seq), publish);
    },
    broken(publish, epochs) {
      let gaps = 0;
      for (const [channel, entry] of channels) {
        if (entry.durable) continue;
        const given = epochs?.(channel);
        if (given === undefined) entry.stream.reset();
        else entry.stream.rebase(given, 0);
        gaps += entry.topics.sendAll(encodeGap(channel, entry.stream.epoch, 0), publish);
      }
      return gaps;
    },
    has: (channel) => channels.has(channel),
    get subscriptions() {
      return subscriptions;
    },
    get filterTopics() {
      return filterTopics;
    },
    held() {
      const out: HistoryHeld[] = [];
      for (const [channel, entry] of channels) {
        if (entry.stream.size > 0) out.push({ channel, messages: entry.stream.size, bytes: entry.stream.bytes });
      }
      return out;
    },
  };
}
