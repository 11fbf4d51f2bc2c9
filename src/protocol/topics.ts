/**
 * A channel's topics on the server's native fan-out: one for the subscribers without a filter and one per
 * distinct filter, each shared by every subscription that asks for it. Topic names start with NUL, which no
 * channel name can contain, so they never collide with the plain-mode topics (the channel names themselves).
 *
 * Pure: `publish` (the server's topic fan-out) is passed to each call that sends.
 */

/** A compiled filter as a subscription carries it. */
export interface TopicFilter {
  readonly key: string;
  readonly match: (payload: unknown) => boolean;
}

/** What a subscription holds: its topic and the filter replays go through. */
export interface Membership {
  readonly topic: string;
  readonly filter: TopicFilter | undefined;
}

/**
 * Sends one frame to every socket subscribed to a topic (the server's fan-out). The server's returns how many
 * sockets it reached (`Publish<number>`); the hub counts its topics' members itself and ignores it.
 */
export type Publish<Reached = unknown> = (topic: string, frame: string) => Reached;

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

/** The topics of one channel. */
export interface Topics {
  /** Subscriptions on every topic. */
  readonly members: number;
  /** Distinct filters with subscribers. */
  readonly filters: number;
  /** Whether anyone would receive a frame (so it is worth encoding). */
  readonly idle: boolean;
  /** Whether a frame must be matched against filters (so its payload must be parsed). */
  readonly filtered: boolean;
  join(filter: TopicFilter | undefined): Membership;
  /** The reverse of `join`; returns whether a filter topic went with its last member. */
  leave(membership: Membership): boolean;
  /** Sends `frame` to the unfiltered topic and to every filter `value` matches; returns frames sent. */
  send(frame: string, value: unknown, publish: Publish): number;
  /** Sends `frame` to every topic, filters or not (a `gap`); returns frames sent. */
  sendAll(frame: string, publish: Publish): number;
}

/** Creates the topics of `channel`, with no member. */
export function createTopics(channel: string): Topics {
  const unfiltered = newTopic(`\u0000m\u0000${channel}`, undefined);
  const filtered = new Map<string, Topic>();
  let members = 0;
  return {
    get members() {
      return members;
    },
    get filters() {
      return filtered.size;
    },
    get idle() {
      return unfiltered.members === 0 && filtered.size === 0;
    },
    get filtered() {
      return filtered.size > 0;
    },
    join(filter) {
      members += 1;
      if (filter === undefined) {
        unfiltered.members += 1;
        return unfiltered.membership;
      }
      let shared = filtered.get(filter.key);
      if (shared === undefined) {
        shared = newTopic(`\u0000f${filter.key}\u0000${channel}`, filter);
        filtered.set(filter.key, shared);
      }
      shared.members += 1;
      // Subscribers of one filter share its first compiled form, so replay and live agree.
      return shared.membership;
    },
    leave(membership) {
      members -= 1;
      const key = membership.filter?.key;
      const topic = key === undefined ? unfiltered : filtered.get(key);
      if (topic !== undefined) topic.members -= 1;
      if (key === undefined || topic === undefined || topic.members > 0) return false;
      filtered.delete(key);
      return true;
    },
    send(frame, value, publish) {
      let sent = 0;
      if (unfiltered.members > 0) {
        publish(unfiltered.name, frame);
        sent += unfiltered.members;
      }
      for (const topic of filtered.values()) {
        if (!topic.filter?.match(value)) continue;
        publish(topic.name, frame);
        sent += topic.members;
      }
      return sent;
    },
    sendAll(frame, publish) {
      let sent = 0;
      for (const topic of [unfiltered, ...filtered.values()]) {
        if (topic.members === 0) continue;
        publish(topic.name, frame);
        sent += topic.members;
      }
      return sent;
    },
  };
}
