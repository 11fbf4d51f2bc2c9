/**
 * Multiplexed delivery, per channel: the channel's stream (position and history) and its topics, one per
 * distinct filter. Each notification is numbered once, encoded once, and handed to `publish` once per
 * topic whose filter matches, so fan-out stays native whatever the number of subscribers.
 *
 * A stream lives exactly as long as its channel is LISTENed (`open` and `close` follow the listener),
 * since that is what continuity means (docs/PROTOCOL.md "Positions"). In a worker the streams follow the
 * primary's: `open` takes the primary's snapshot and `deliver` the primary's numbering.
 *
 * Pure: `publish` (the server's topic fan-out) is passed to each call that sends. Topic names start with NUL, which no channel
 * name can contain, so they never collide with the plain-mode topics (the channel names themselves).
 */

import { createStream, type Position, type Resume, type Since, type Snapshot, type Stream } from './history.ts';
import { encodeGap, encodeMessage } from './replies.ts';

/** A compiled filter as a subscription carries it. */
export interface TopicFilter {
  readonly key: string;
  readonly match: (payload: unknown) => boolean;
}

/** One topic of a channel: subscribers with the same filter (or none) share it. */
interface Topic {
  readonly name: string;
  readonly filter: TopicFilter | undefined;
  /** What each subscription of the topic holds: one object for all of them. */
  readonly membership: Membership;
  members: number;
}

const newTopic = (name: string, filter: TopicFilter | undefined): Topic => ({
  name,
  filter,
  membership: { topic: name, filter },
  members: 0,
});

interface ChannelState {
  readonly channelJson: string;
  /** Messages the stream keeps (its history). */
  readonly capacity: number;
  readonly stream: Stream;
  readonly unfiltered: Topic;
  readonly filtered: Map<string, Topic>;
}

/** What a subscription holds: its topic and the filter replays go through. */
export interface Membership {
  readonly topic: string;
  readonly filter: TopicFilter | undefined;
}

/** Options of {@link createHub}. */
export interface HubOptions {
  /** Messages kept per channel for resume (0 = none). */
  history: (channel: string) => number;
  /** Where epochs come from (the process-wide source by default). */
  epochs?: () => string;
}

/** Sends one frame to every socket subscribed to a topic (the server's fan-out). */
export type Publish = (topic: string, frame: string) => unknown;

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
  /** Every message after `since`, or not recovered (never a partial replay). */
  resume(channel: string, since: Since): Resume;
  /**
   * Numbers and fans out one delivered payload (`payloadJson` as clients get it); returns frames sent.
   * `at` is the primary's numbering, which a worker follows instead of numbering itself. `payload` may be
   * a function, called only when something here needs the text.
   */
  deliver(channel: string, payload: string | (() => string), publish: Publish, at?: Position): number;
  /**
   * Continuity is broken (the LISTEN connection was lost): every channel starts a new epoch (the one
   * `epochs` names, in a worker) and every subscriber gets a `gap`. Returns how many gap frames were sent.
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
  let subscriptions = 0;
  let filterTopics = 0;

  const existing = (channel: string): ChannelState => {
    const entry = channels.get(channel);
    if (entry === undefined) throw new Error(`hub: channel ${JSON.stringify(channel)} is not held`);
    return entry;
  };
  const topicsOf = (entry: ChannelState) => [entry.unfiltered, ...entry.filtered.values()];

  return {
    open(channel, from) {
      if (channels.has(channel)) return;
      const capacity = options.history(channel);
      const stream = createStream({ capacity, epochs: options.epochs });
      if (from !== undefined) {
        stream.rebase(from.epoch, from.head - from.entries.length);
        // Consecutive seqs ending at the head; a smaller history here keeps the newest of them.
        for (const [seq, payloadJson] of from.entries) stream.follow(from.epoch, seq, payloadJson);
      }
      channels.set(channel, {
        channelJson: JSON.stringify(channel),
        capacity,
        stream,
        unfiltered: newTopic(`\u0000m\u0000${channel}`, undefined),
        filtered: new Map(),
      });
    },
    close(channel) {
      const entry = channels.get(channel);
      if (entry === undefined) return;
      channels.delete(channel);
      subscriptions -= entry.unfiltered.members;
      for (const topic of entry.filtered.values()) subscriptions -= topic.members;
      filterTopics -= entry.filtered.size;
    },
    snapshot(channel) {
      const { stream } = existing(channel);
      const held = stream.resume({ epoch: stream.epoch, seq: stream.head - stream.size });
      const entries = held.recovered ? held.entries.map((entry) => [entry.seq, entry.payloadJson] as const) : [];
      return { epoch: stream.epoch, head: stream.head, entries };
    },
    join(channel, filter) {
      const entry = existing(channel);
      subscriptions += 1;
      if (filter === undefined) {
        entry.unfiltered.members += 1;
        return entry.unfiltered.membership;
      }
      let shared = entry.filtered.get(filter.key);
      if (shared === undefined) {
        shared = newTopic(`\u0000f${filter.key}\u0000${channel}`, filter);
        entry.filtered.set(filter.key, shared);
        filterTopics += 1;
      }
      shared.members += 1;
      // Subscribers of one filter share its first compiled form, so replay and live agree.
      return shared.membership;
    },
    leave(channel, membership) {
      // A channel closed under its subscribers (they were counted out then) has nothing left to undo.
      const entry = channels.get(channel);
      if (entry === undefined) return;
      subscriptions -= 1;
      const key = membership.filter?.key;
      const topic = key === undefined ? entry.unfiltered : entry.filtered.get(key);
      if (topic !== undefined) topic.members -= 1;
      if (key !== undefined && topic !== undefined && topic.members === 0) {
        entry.filtered.delete(key);
        filterTopics -= 1;
      }
    },
    position(channel) {
      const { stream } = existing(channel);
      return { epoch: stream.epoch, seq: stream.head };
    },
    resume: (channel, since) => existing(channel).stream.resume(since),
    deliver(channel, payload, publish, at) {
      const entry = channels.get(channel);
      if (entry === undefined) return 0;
      // A channel only plain sockets use, without history, just counts: nothing to encode.
      const idle = entry.unfiltered.members === 0 && entry.filtered.size === 0 && entry.capacity === 0;
      const payloadJson = idle ? '' : typeof payload === 'string' ? payload : payload();
      let value: unknown;
      const parse = entry.filtered.size > 0;
      if (parse) value = JSON.parse(payloadJson);
      // History keeps the text only: replays parse it again, so held memory is the payloads alone.
      let seq: number;
      if (at === undefined) seq = entry.stream.append(payloadJson, undefined);
      else {
        entry.stream.follow(at.epoch, at.seq, payloadJson);
        seq = at.seq;
      }
      if (idle) return 0;
      const frame = encodeMessage(entry.channelJson, seq, payloadJson);
      let sent = 0;
      if (entry.unfiltered.members > 0) {
        publish(entry.unfiltered.name, frame);
        sent += entry.unfiltered.members;
      }
      if (parse) {
        for (const topic of entry.filtered.values()) {
          if (!topic.filter?.match(value)) continue;
          publish(topic.name, frame);
          sent += topic.members;
        }
      }
      return sent;
    },
    broken(publish, epochs) {
      let gaps = 0;
      for (const [channel, entry] of channels) {
        const given = epochs?.(channel);
        if (given === undefined) entry.stream.reset();
        else entry.stream.rebase(given, 0);
        const epoch = entry.stream.epoch;
        const frame = encodeGap(channel, epoch, 0);
        for (const topic of topicsOf(entry)) {
          if (topic.members === 0) continue;
          publish(topic.name, frame);
          gaps += topic.members;
        }
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
