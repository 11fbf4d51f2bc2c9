/**
 * Who holds which topic, kept beside Bun's own topic table (which cannot be read back): so `publish` can
 * say how many sockets a frame reached, a publish that met backpressure can find the sockets past the
 * slow-consumer bound, and a closing socket can leave every topic it joined. Generic over the socket, so
 * `server.ts` stays the only file that knows Bun's socket type.
 *
 * `GET /events` streams are members too ({@link PushMember}): Bun's `server.publish` reaches WebSockets
 * only, so the table hands them each frame itself, in the same step, and they keep the order of the topic.
 */

/** What the topic table needs of a socket. */
export interface TopicSocket {
  readonly data: {
    /** The topics this socket joined (an array: a handful at most, and cheaper than a Set per socket). */
    readonly topics: string[];
  };
  subscribe(topic: string): void;
}

/** A member Bun's `server.publish` does not reach (a `GET /events` stream): `push` hands it each frame. */
export interface PushMember extends TopicSocket {
  push(frame: string): void;
}

/** Options of {@link createTopics}. */
export interface TopicOptions<S> {
  /** Whether a socket is past the slow-consumer bound. */
  slow(socket: S): boolean;
  /** Closes a slow consumer (1008). */
  cut(socket: S): void;
}

/** The topic table of one server. */
export interface Topics<S> {
  join(socket: S, topic: string): void;
  /** Forgets the membership; Bun's side is the caller's (a closed socket has already left it). */
  leave(socket: S, topic: string): void;
  /** A stream joins: `push` hands it each frame of the topic from now on. */
  joinStream(stream: PushMember, topic: string): void;
  leaveStream(stream: PushMember, topic: string): void;
  /**
   * Sends one frame to every member of the topic: `server.publish` (Bun's) for the sockets, `push` for the
   * streams, in the same step. Returns how many members it reached.
   */
  publish(topic: string, frame: string, server: { publish(topic: string, frame: string): number }): number;
  /**
   * A publish on `topic` met backpressure (Bun's `publish` returned -1 or 0): after the current batch of
   * notifications, whoever is past the bound is cut. One sweep per topic however many frames met it.
   */
  congested(topic: string): void;
}

/** Creates an empty topic table. */
export function createTopics<S extends TopicSocket>(options: TopicOptions<S>): Topics<S> {
  const members = new Map<string, Set<S>>();
  const streams = new Map<string, Set<PushMember>>();
  const sweeps = new Set<string>();
  const sweep = (topic: string) => {
    sweeps.delete(topic);
    for (const socket of members.get(topic) ?? []) if (options.slow(socket)) options.cut(socket);
  };
  const congested = (topic: string) => {
    if (sweeps.has(topic)) return;
    sweeps.add(topic);
    queueMicrotask(() => sweep(topic));
  };
  // One way in and out for both tables; kept apart so the sockets' path asks nothing of a socket.
  const enter =
    <M extends TopicSocket>(table: Map<string, Set<M>>) =>
    (member: M, topic: string) => {
      let set = table.get(topic);
      if (set === undefined) {
        set = new Set();
        table.set(topic, set);
      }
      set.add(member);
      if (!member.data.topics.includes(topic)) member.data.topics.push(topic);
      member.subscribe(topic);
    };
  const exit =
    <M extends TopicSocket>(table: Map<string, Set<M>>) =>
    (member: M, topic: string) => {
      const set = table.get(topic);
      set?.delete(member);
      if (set?.size === 0) table.delete(topic);
      const at = member.data.topics.indexOf(topic);
      if (at !== -1) member.data.topics.splice(at, 1);
    };
  return {
    join: enter(members),
    leave: exit(members),
    joinStream: enter(streams),
    leaveStream: exit(streams),
    publish(topic, frame, server) {
      const sockets = members.get(topic)?.size ?? 0;
      const pushed = streams.get(topic);
      // -1: someone is backpressured, 0: someone dropped it (and was closed at the hard cap).
      if (sockets > 0 && server.publish(topic, frame) <= 0) congested(topic);
      if (pushed !== undefined) for (const stream of pushed) stream.push(frame);
      return sockets + (pushed?.size ?? 0);
    },
    congested,
  };
}
