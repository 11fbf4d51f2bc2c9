/**
 * The listener of one process: in a lone process or the primary of `[server] workers > 1`, the instance's
 * one LISTEN connection (`db/listener.ts`), which also holds the workers' probe channels for them; in a worker,
 * a follower of the primary over IPC (`cluster/follower.ts`), with a query connection of its own. Both open
 * and close the hub's streams as channels are taken up and let go.
 */

import type { Logger } from './base/log.ts';
import { isProbeChannel } from './base/name.ts';
import { createFollower, type Follower } from './cluster/follower.ts';
import type { WorkerRole } from './cluster/messages.ts';
import type { Config } from './config/load.ts';
import { createListener, type Listener } from './db/listener.ts';
import { createQueries } from './db/queries.ts';
import { createIngest, type Ingest } from './ingest.ts';
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

/** The process's listener, in a worker the follower it is, and how it hears of durable channels' rows. */
export function createProcessListener(o: ProcessListenerOptions): {
  listener: Listener;
  follower: Follower | undefined;
  ingest: Ingest;
} {
  const { config, databaseUrl, cluster } = o.options;
  const log = o.options.log.child('listener');
  const ingestOf = (listener: Listener, primary: boolean) =>
    createIngest({ config, databaseUrl, archive: listener.queries, primary, log: o.options.log.child('ingest') });
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
    return { listener: follower, follower, ingest: ingestOf(follower, false) };
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
  return { listener, follower: undefined, ingest: ingestOf(listener, true) };
}
