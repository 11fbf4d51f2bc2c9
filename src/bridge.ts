/**
 * The composition root: wires config, database listener, canary, catalog, metrics and server into one bridge
 * that can be stopped. Tests start the whole app in-process through it; `main.ts` reads the environment, calls it.
 *
 * Wiring order is declaration order: every piece is built before anything that calls it, and nothing
 * runs until `listener.start`, so no callback can reach a piece that does not exist yet.
 */
import type { KeySource } from './auth/tokens.ts';
import type { Clock } from './base/clock.ts';
import type { Logger } from './base/log.ts';
import { createStats } from './base/stats.ts';
import { NO_TRACER, type Tracer } from './base/trace.ts';
import { createCatalog, durableChannels } from './channels/catalog.ts';
import { describeChannels } from './channels/discovery.ts';
import type { WorkerRole } from './cluster/messages.ts';
import { type Cluster, createCluster } from './cluster/primary.ts';
import type { Config } from './config/load.ts';
import { createCanary, logFailing, newProbeChannel } from './db/canary.ts';
import { createSweeper } from './db/sweeper.ts';
import { createDurability, keptInMemory } from './delivery/durability.ts';
import { createFanOut } from './delivery/fanout.ts';
import { createPipeline, type InvalidPayloadHook } from './delivery/pipeline.ts';
import { asyncApiText } from './describe/asyncapi.ts';
import { fileLimitSockets } from './http/admission.ts';
import { createAuthority } from './http/authority.ts';
import { createRoutes } from './http/routes.ts';
import { type Bound, createServer } from './http/server.ts';
import { createProcessListener, processEvents } from './listening.ts';
import { createMetrics } from './observe/metrics.ts';
import { createHub } from './protocol/hub.ts';
import { createSessions, sessionLimits } from './protocol/session.ts';

/** What {@link createBridge} needs; everything is passed in, nothing is read from globals. */
export interface BridgeOptions {
  config: Config;
  /** The database URL (the config's, or an override from the environment). */
  databaseUrl: string;
  log: Logger;
  /** The console page served at `/`. */
  consoleHtml?: string;
  /** The browser client module served at `/client.js` (see `client/bundle.ts`). */
  clientJs?: string;
  /** `[auth]`'s key material, resolved from the environment and files by `auth/keys.ts`; required with `[auth]`. */
  authKeys?: KeySource;
  /** Share the port with sibling worker processes (`[server] workers`). */
  reusePort?: boolean;
  /** The process's soft open-file limit, when known: upgrades past it are refused with 503 `file_limit`. */
  openFiles?: number | undefined;
  /**
   * Bind the port only once the database answers. For workers: with a shared port the kernel hands
   * them clients as soon as they listen, and a worker still connecting would refuse those with 503.
   */
  listenAfterDatabase?: boolean;
  /**
   * `[server] workers > 1`: the primary keeps the instance's one LISTEN connection and serves its workers
   * (`cluster/primary.ts`); a worker follows it over IPC (`cluster/follower.ts`). Absent: a lone process.
   */
  cluster?: { readonly role: 'primary' } | WorkerRole;
  /** Token expiry's time: jose's `exp`/`nbf` checks and the sockets' expiry timers (the real clock by default). */
  clock?: Clock;
  /**
   * Called with every payload this process drops as invalid, with its issues (the test kit's `invalid()`).
   * In `[server] workers > 1` the primary validates, so only its hook hears of them.
   */
  onInvalid?: InvalidPayloadHook;
  /** The version the AsyncAPI document names (package.json's, from `main.ts`). */
  version?: string;
  /** Spans for notifications, publishes and replays (`tracing.ts` makes one from `OTEL_*`); default off. */
  tracer?: Tracer;
}

/** A running bridge. */
export interface Bridge {
  /** A URL local clients can use (127.0.0.1 when bound to 0.0.0.0). */
  readonly url: URL;
  /** The address and port actually bound. */
  readonly bound: Bound;
  /**
   * Resolves once the bridge serves clients: the LISTEN connection is up, a NOTIFY round trip came back
   * through it, and (with `[auth]`) the revocations were read. For tests and embedders, instead of polling
   * /readyz. Never rejects; a bridge whose database never answers never becomes ready.
   */
  readonly ready: Promise<void>;
  /** In the primary of `[server] workers > 1`: the workers' side, for `workers.ts` to attach them. */
  readonly cluster: Cluster | undefined;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts a bridge. The HTTP server listens at once, even while the database is still unreachable. */
export async function createBridge(options: BridgeOptions): Promise<Bridge> {
  const { config, log, clock } = options;
  const tracer = options.tracer ?? NO_TRACER;
  const stats = createStats();
  const catalog = createCatalog(config);
  const authority = createAuthority({ config, keys: options.authKeys, clock, isPublic: catalog.isPublic, stats, log });
  const { access, revocations, counter } = authority;
  const probe = newProbeChannel();
  // docs/PROTOCOL.md: a channel with history is LISTENed from startup, with or without subscribers; so is a
  // durable one, whose wake-ups must arrive (workers take those up on demand, from the primary's reader).
  const pinned = [...config.channels.values()].filter((channel) => channel.history > 0).map((channel) => channel.name);
  const hub = createHub({ history: keptInMemory(config), durable: catalog.durable });
  const { listener, follower } = createProcessListener({
    options,
    hub,
    probe,
    pinned: [...pinned, ...durableChannels(config).map((channel) => channel.name)],
    controlChannel: authority.channel,
    limited: counter.limited,
    // Bounded memory: counters of undeclared channels go when their last subscriber does.
    onUnlisten(channel) {
      hub.close(channel);
      if (!catalog.declared(channel)) stats.channels.delete(channel);
    },
    sample: () => metrics.sample(),
  });
  const worker = options.cluster?.role === 'worker' ? options.cluster : undefined;
  // A worker claims its slots from the primary's count (cluster/claims.ts).
  const slots = follower?.slots ?? counter;
  const canary = createCanary({
    intervalMs: config.database.canaryIntervalMs,
    send: (token) => listener.queries.notify(probe, token),
    onFailing: logFailing(log.child('canary')),
  });
  const durability = createDurability({
    config,
    catalog,
    hub,
    archive: listener.queries,
    databaseUrl: options.databaseUrl,
    reads: follower === undefined,
    // Called once the listener runs, when everything below exists.
    deliver: (channel, payload, at) => pipeline.stored(channel, payload, at),
    publish: (topic, frame) => server.publish(topic, frame),
    closePlain: (which) => server.closePlain('database_lost', which),
    workers: () => cluster,
    stats,
    log,
  });
  const gated = durability.gate(listener);
  const sessions = createSessions({
    catalog,
    hub,
    pager: durability.pager,
    listener: gated,
    limits: sessionLimits(config.server),
    stats,
    access,
    slots,
    log: log.child('session'),
    tracer,
  });
  const metrics = createMetrics({ stats, listener, canary, hub, revocations });
  const cluster =
    options.cluster?.role === 'primary'
      ? createCluster({
          listener: gated,
          hub,
          pinned,
          slots: counter,
          revocations,
          sample: metrics.sample,
          backlogBytes: config.server.workerBacklogBytes,
          stats,
          log,
        })
      : undefined;
  const scrape = cluster?.scrape ?? follower?.scrape;
  const routes = createRoutes({
    listener,
    canary,
    revocations,
    ingest: follower?.ingest ?? durability.ingest,
    metrics: scrape === undefined ? metrics : { ...metrics, render: (byWorker = false) => scrape(byWorker) },
    channelsDocument: JSON.stringify(describeChannels(config)),
    asyncapi: asyncApiText(config, options.version ?? '0.0.0'),
    consoleHtml: options.consoleHtml,
    clientJs: options.clientJs,
  });
  const server = createServer({
    config,
    catalog,
    listener,
    canary,
    stats,
    routes,
    log: log.child('server'),
    sessions,
    access,
    slots,
    subjects: authority.subjects,
    reusePort: options.reusePort ?? false,
    maxSockets: fileLimitSockets(options.openFiles),
    clock,
  });

  const pipeline = createPipeline({
    catalog,
    stats,
    fanOut: createFanOut({ catalog, hub, publish: server.publish, cluster }),
    fetch: (id, channel) => listener.queries.fetchPayload(id, channel, config.server.maxPayloadBytes),
    log: log.child('payload'),
    onInvalid: options.onInvalid,
    tracer,
    seqOf: (channel) => (hub.has(channel) ? hub.position(channel).seq : undefined),
  });
  const sweeper = createSweeper({
    ttlSeconds: config.database.largePayloadTtl,
    sweep: listener.queries.sweepPayloads,
    onExpired: (rows) => stats.expired(rows),
    log: log.child('sweeper'),
  });

  // Where the LISTEN connection is, cut-offs are read for the instance and handed on to its workers. A
  // worker hears its primary from before `start`, whose hello the primary answers.
  if (follower === undefined) authority.read(listener.queries, cluster?.cutoff);
  else worker?.onMessage(follower.receive);
  const { events, databaseUp, ready } = processEvents({
    probe,
    canary,
    authority,
    revocations,
    durability,
    cluster,
    pipeline,
    server,
    hub,
    stats,
    isDurable: catalog.durable,
  });
  listener.start(events);
  if (options.listenAfterDatabase) await databaseUp.promise;
  const bound = server.listen();
  // The primary sweeps for the instance; SKIP LOCKED keeps other instances' sweeps out of its way.
  if (worker === undefined) sweeper.start();
  durability.start();

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      canary.stop();
      authority.stop();
      sweeper.stop();
      await server.stop();
      await Promise.all([listener.stop(), durability.stop()]);
    })();
    return stopped;
  };
  return { url: bound.url, bound, ready: ready.promise, cluster, stop, [Symbol.asyncDispose]: stop };
}
