/**
 * Multiplexed delivery, per channel: the channel's stream (position and history) and its topics, one per
 * distinct filter. Each notification is numbered once, encoded once, and handed to `publish` once per
 * topic whose filter matches, so fan-out stays native whatever the number of subscribers.
 *
 * Pure: `publish` (the server's topic fan-out) is passed to each call that sends. Topic names start with NUL, which no channel
 * name can contain, so they never collide with the plain-mode topics (the channel names themselves).
 */

import { createStream, type Resume, type Since, type Stream } from './history.ts';
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
  members: number;
}

interface ChannelState {
  readonly channelJson: string;
  readonly stream: Stream;
  readonly unfiltered: Topic;
  readonly filtered: Map<string, Topic>;
  /** Subscriptions holding the state; a pinned channel (history) is held by the hub itself too. */
  holders: number;
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
  /** Keeps a channel's stream for the life of the process (channels with history, from startup). */
  pin(channel: string): void;
  /** Joins a subscription to its channel's topic for `filter`, creating the channel's stream if needed. */
  join(channel: string, filter: TopicFilter | undefined): Membership;
  /** The reverse of `join`; a channel without holders is forgotten (its next stream starts a new epoch). */
  leave(channel: string, membership: Membership): void;
  /** The channel's current epoch and head; the channel must have been joined or pinned. */
  position(channel: string): Since;
  /** Every message after `since`, or not recovered (never a partial replay). */
  resume(channel: string, since: Since): Resume;
  /** Numbers and fans out one delivered payload (`payloadJson` as clients get it); returns frames sent. */
  deliver(channel: string, payloadJson: string, publish: Publish): number;
  /**
   * Continuity is broken (the LISTEN connection was lost): every channel starts a new epoch and every
   * subscriber gets a `gap`. Returns how many gap frames were sent.
   */
  broken(publish: Publish): number;
  /** Whether the channel has multiplexed subscribers or history (so `deliver` has work to do). */
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

  const state = (channel: string): ChannelState => {
    let entry = channels.get(channel);
    if (entry === undefined) {
      const capacity = options.history(channel);
      entry = {
        channelJson: JSON.stringify(channel),
        stream: createStream({ capacity, epochs: options.epochs }),
        unfiltered: { name: `\u0000m\u0000${channel}`, filter: undefined, members: 0 },
        filtered: new Map(),
        holders: 0,
      };
      channels.set(channel, entry);
    }
    return entry;
  };
  const existing = (channel: string): ChannelState => {
    const entry = channels.get(channel);
    if (entry === undefined) throw new Error(`hub: channel ${JSON.stringify(channel)} is not held`);
    return entry;
  };
  const topicsOf = (entry: ChannelState) => [entry.unfiltered, ...entry.filtered.values()];

  return {
    pin(channel) {
      state(channel).holders += 1;
    },
    join(channel, filter) {
      const entry = state(channel);
      entry.holders += 1;
      subscriptions += 1;
      if (filter === undefined) {
        entry.unfiltered.members += 1;
        return { topic: entry.unfiltered.name, filter };
      }
      let topic = entry.filtered.get(filter.key);
      if (topic === undefined) {
        topic = { name: `\u0000f${filter.key}\u0000${channel}`, filter, members: 0 };
        entry.filtered.set(filter.key, topic);
        filterTopics += 1;
      }
      topic.members += 1;
      // Subscribers of one filter share its first compiled form, so replay and live agree.
      return { topic: topic.name, filter: topic.filter };
    },
    leave(channel, membership) {
      const entry = existing(channel);
      subscriptions -= 1;
      const key = membership.filter?.key;
      const topic = key === undefined ? entry.unfiltered : entry.filtered.get(key);
      if (topic !== undefined) topic.members -= 1;
      if (key !== undefined && topic !== undefined && topic.members === 0) {
        entry.filtered.delete(key);
        filterTopics -= 1;
      }
      entry.holders -= 1;
      if (entry.holders === 0) channels.delete(channel);
    },
    position(channel) {
      const { stream } = existing(channel);
      return { epoch: stream.epoch, seq: stream.head };
    },
    resume: (channel, since) => existing(channel).stream.resume(since),
    deliver(channel, payloadJson, publish) {
      const entry = channels.get(channel);
      if (entry === undefined) return 0;
      let value: unknown;
      const parse = entry.filtered.size > 0;
      if (parse) value = JSON.parse(payloadJson);
      // History keeps the text only: replays parse it again, so held memory is the payloads alone.
      const seq = entry.stream.append(payloadJson, undefined);
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
    broken(publish) {
      let gaps = 0;
      for (const [channel, entry] of channels) {
        const epoch = entry.stream.reset();
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
