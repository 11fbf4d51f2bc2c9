/**
 * The last step of a delivery: one valid frame to every socket of this process that holds its channel
 * (plain sockets get the frame, multiplexed ones a numbered `message` through the hub), and, in the primary
 * of `[server] workers > 1`, to the workers.
 *
 * The primary sends last: its own sends wait in a queue until the read's deliveries are on their way to
 * the workers (`cluster.forward` flushes in a microtask queued before ours), so a worker's clients never
 * wait for the primary's own fan-out. A topic's frames keep their order whenever they are sent.
 */
import type { ChannelStats } from '../base/stats.ts';
import type { Catalog } from '../channels/catalog.ts';
import type { Cluster } from '../cluster/primary.ts';
import type { Position } from '../protocol/history.ts';
import { type Hub, type Publish, UNNUMBERED } from '../protocol/hub.ts';

/** Options of {@link createFanOut}. */
export interface FanOutOptions {
  catalog: Pick<Catalog, 'payloadJson'>;
  hub: Pick<Hub, 'deliver' | 'has' | 'position' | 'numbers'>;
  /** The server's topic fan-out. */
  publish: Publish<number>;
  /** The primary's side of `[server] workers > 1`; absent in a lone process and in a worker. */
  cluster: Pick<Cluster, 'forward'> | undefined;
}

/**
 * Fans one valid frame out and counts the sockets reached in `counters.delivered`. `at` is the primary's
 * position of the message, in a worker, or the database's, for a durable channel's row; elsewhere the hub
 * numbers it.
 */
export type FanOut = (channel: string, frame: string, counters: ChannelStats, at?: Position) => void;

/** Creates the fan-out of one process. */
export function createFanOut(options: FanOutOptions): FanOut {
  const { catalog, hub, publish, cluster } = options;
  if (cluster === undefined) {
    return (channel, frame, counters, at) => {
      counters.delivered += publish(channel, frame);
      if (hub.has(channel))
        counters.delivered += hub.deliver(channel, catalog.payloadJson(channel, frame), publish, at);
    };
  }

  const held: (readonly [topic: string, frame: string, counters: ChannelStats | undefined])[] = [];
  let holding = false;
  const sendHeld = () => {
    holding = false;
    for (const [topic, frame, counters] of held.splice(0)) {
      const sent = publish(topic, frame);
      if (counters !== undefined) counters.delivered += sent;
    }
  };
  const publishLater: Publish<number> = (topic, frame) => {
    held.push([topic, frame, undefined]);
    return 0;
  };
  return (channel, frame, counters, at) => {
    if (hub.has(channel)) {
      // The hub counts its topics' members now; the frames themselves leave with the held ones.
      counters.delivered += hub.deliver(channel, catalog.payloadJson(channel, frame), publishLater, at);
      cluster.forward(channel, frame, at ?? (hub.numbers(channel) ? hub.position(channel) : UNNUMBERED));
    }
    held.push([channel, frame, counters]);
    if (holding) return;
    holding = true;
    queueMicrotask(sendHeld);
  };
}
