/**
 * Who holds which topic, kept beside Bun's own topic table (which cannot be read back): so `publish` can
 * say how many sockets a frame reached, a publish that met backpressure can find the sockets past the
 * slow-consumer bound, and a closing socket can leave every topic it joined. Generic over the socket, so
 * `server.ts` stays the only file that knows Bun's socket type.
 */

/** What the topic table needs of a socket. */
export interface TopicSocket {
  readonly data: {
    /** The topics this socket joined (an array: a handful at most, and cheaper than a Set per socket). */
    readonly topics: string[];
  };
  subscribe(topic: string): void;
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
  /** Sockets on the topic (0 when none). */
  count(topic: string): number;
  /**
   * A publish on `topic` met backpressure (Bun's `publish` returned -1 or 0): after the current batch of
   * notifications, whoever is past the bound is cut. One sweep per topic however many frames met it.
   */
  congested(topic: string): void;
}

/** Creates an empty topic table. */
export function createTopics<S extends TopicSocket>(options: TopicOptions<S>): Topics<S> {
  const members = new Map<string, Set<S>>();
  const sweeps = new Set<string>();
  const sweep = (topic: string) => {
    sweeps.delete(topic);
    for (const socket of members.get(topic) ?? []) if (options.slow(socket)) options.cut(socket);
  };
  return {
    join(socket, topic) {
      let set = members.get(topic);
      if (set === undefined) {
        set = new Set();
        members.set(topic, set);
      }
      set.add(socket);
      if (!socket.data.topics.includes(topic)) socket.data.topics.push(topic);
      socket.subscribe(topic);
    },
    leave(socket, topic) {
      const set = members.get(topic);
      set?.delete(socket);
      if (set?.size === 0) members.delete(topic);
      const at = socket.data.topics.indexOf(topic);
      if (at !== -1) socket.data.topics.splice(at, 1);
    },
    count: (topic) => members.get(topic)?.size ?? 0,
    congested(topic) {
      if (sweeps.has(topic)) return;
      sweeps.add(topic);
      queueMicrotask(() => sweep(topic));
    },
  };
}
