/**
 * The listener of one process: in a lone process or the primary of `[server] workers > 1`, the instance's
 * one LISTEN connection (`db/listener.ts`), which also holds the workers' probe channels for them; in a worker,
 * a follower of the primary over IPC (`cluster/follower.ts`), with a query connection of its own. Both open
 * and close the hub's streams as channels are taken up and let go.
 */

import type { Revocations } from './auth/revocations.ts';
import type { Logger } from './base/log.ts';
import { isProbeChannel } from './base/name.ts';
import type { Stats } from './base/stats.ts';
import { createFollower, type Follower, type FollowerEvents } from './cluster/follower.ts';
import type { WorkerRole } from './cluster/messages.ts';
import type { Cluster } from './cluster/primary.ts';
import type { Config } from './config/load.ts';
import type { Canary } from './db/canary.ts';
import { createListener, type Listener } from './db/listener.ts';
import { createQueries } from './db/queries.ts';
import type { Durability } from './delivery/durability.ts';
import type { Pipeline } from './delivery/pipeline.ts';
import type { Authority } from './http/authority.ts';
import type { BridgeServer } from './http/server.ts';
import type { Hub } from './protocol/hub.ts';

/** Options of {@link createProcessListener}. */
export interface ProcessListenerOptions {
  options: {
    readonly config: Config;
    readonly databaseUrl: string;
    readonly log: Logger;
    /** `[server] workers > 1`: a worker follows its primary; a lone process or the primary LISTENs itself. */
    readonly cluster?: { readonly role: 'primary' } | WorkerRole | undefined;
  };
  hub: Pick<Hub, 'open'>;
  /** This process's probe channel (the readiness canary's). */
  probe: string;
  /** Channels LISTENed from the start (those keeping history). */
  pinned: readonly string[];
  /** The control channel of cut-offs, LISTENed beside the probe (none without `[auth]`). */
  controlChannel: string | undefined;
  /** Whether `[auth] max_connections_per_subject` is set: a worker then claims its slots from the primary. */
  limited: boolean;
  /** A channel was let go: its stream and its counters can go. */
  onUnlisten(channel: string): void;
  /** This process's metrics, for the primary's aggregate (a worker's). */
  sample(): Promise<unknown>;
}

/** The process's listener, and in a worker the follower it is. */
export function createProcessListener(o: ProcessListenerOptions): {
  listener: Listener;
  follower: Follower | undefined;
} {
  const { config, databaseUrl, cluster } = o.options;
  const log = o.options.log.child('listener');
  if (cluster?.role === 'worker') {
    const follower = createFollower({
      send: cluster.send,
      queries: createQueries(databaseUrl),
      probeChannel: o.probe,
      onListen: o.hub.open,
      onUnlisten: o.onUnlisten,
      sample: o.sample,
      limited: o.limited,
      log,
    });
    return { listener: follower, follower };
  }
  const listener = createListener({
    url: databaseUrl,
    reconnectMinMs: config.database.reconnectMinMs,
    reconnectMaxMs: config.database.reconnectMaxMs,
    probeChannel: o.probe,
    controlChannel: o.controlChannel,
    pinned: o.pinned,
    log,
    onListen: (channel) => isProbeChannel(channel) || o.hub.open(channel),
    onUnlisten: o.onUnlisten,
    // Workers' probes, LISTENed here for them.
    isPrivate: isProbeChannel,
    maxChannels: config.server.maxChannels,
  });
  return { listener, follower: undefined };
}

/** What {@link processEvents} routes the listener's events to. */
export interface ProcessEventsOptions {
  probe: string;
  canary: Pick<Canary, 'receive' | 'restart' | 'stop' | 'verified'>;
  authority: Pick<Authority, 'channel' | 'receive' | 'apply' | 'state'>;
  revocations: Pick<Revocations, 'whenCurrent'>;
  durability: Pick<Durability, 'notification' | 'gap' | 'state'>;
  cluster: Pick<Cluster, 'probe' | 'state'> | undefined;
  pipeline: Pick<Pipeline, 'notification' | 'delivered' | 'reset'>;
  server: Pick<BridgeServer, 'closePlain' | 'publish'>;
  hub: Pick<Hub, 'broken'>;
  stats: Stats;
  isDurable(channel: string): boolean;
}

/**
 * The listener's events, routed: the canary's probe, durable wake-ups, the control channel, workers' probes,
 * then the pipeline. `databaseUp` resolves at the first `up`; `ready` once the canary came back through it and
 * (with `[auth]`) the revocations are current. A loss closes plain sockets (but those on durable channels,
 * which are caught up from the table) and gives every other multiplexed subscriber its `gap` at once.
 */
export function processEvents(o: ProcessEventsOptions) {
  const { canary, authority, durability, cluster, pipeline, server, hub, stats } = o;
  const databaseUp = Promise.withResolvers<void>();
  const ready = Promise.withResolvers<void>();
  const events: FollowerEvents = {
    notification(channel, payload) {
      if (channel === o.probe) return canary.receive(payload);
      if (durability.notification(channel, payload)) return;
      if (channel === authority.channel) return authority.receive(payload);
      if (cluster?.probe(channel, payload)) return;
      pipeline.notification(channel, payload);
    },
    delivered: pipeline.delivered,
    cutoff: authority.apply,
    gap: durability.gap,
    state(state, epochs) {
      authority.state(state);
      if (state === 'up') {
        databaseUp.resolve();
        canary.restart();
        void canary
          .verified(Number.POSITIVE_INFINITY)
          .then((ok) => ok && o.revocations.whenCurrent(Number.POSITIVE_INFINITY))
          .then((ok) => ok && ready.resolve());
      } else canary.stop();
      if (state === 'down') {
        pipeline.reset();
        // Tell clients now, not when the database is back: until then they would wait in silence.
        server.closePlain('database_lost', (channel) => !o.isDurable(channel));
        stats.gaps += hub.broken(server.publish, epochs);
      }
      // Workers hear of it once this process has moved on: after a loss, the new epochs are set.
      cluster?.state(state);
      durability.state(state);
    },
  };
  return { events, databaseUp, ready };
}
