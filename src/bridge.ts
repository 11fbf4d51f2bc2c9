/**
 * The composition root: wires config, database listener, catalog, metrics and server into one bridge
 * that can be stopped. Tests start the whole app in-process through it; `main.ts` only reads the
 * environment and signals and calls this.
 */

import { createCatalog } from './channels/catalog.ts';
import { describeChannels } from './channels/discovery.ts';
import type { Config } from './config/load.ts';
import { createCanary } from './db/canary.ts';
import { createListener } from './db/listener.ts';
import { type BridgeServer, createServer } from './http/server.ts';
import { Close } from './http/wire.ts';
import type { Logger } from './observe/log.ts';
import { createMetrics } from './observe/metrics.ts';
import { createStats } from './observe/stats.ts';

/** What {@link createBridge} needs; everything is passed in, nothing is read from globals. */
export interface BridgeOptions {
  config: Config;
  /** The database URL (the config's, or an override from the environment). */
  databaseUrl: string;
  log: Logger;
  /** The console page served at `/`. */
  consoleHtml?: string;
  /** Share the port with sibling worker processes (`[server] workers`). */
  reusePort?: boolean;
  /**
   * Bind the port only once the database answers. For workers: with a shared port the kernel hands
   * them clients as soon as they listen, and a worker still connecting would refuse those with 503.
   */
  listenAfterDatabase?: boolean;
}

/** A running bridge. */
export interface Bridge {
  readonly url: URL;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

// PG: the probe channel is private to this process; clients never learn its name.
const probeChannel = () => `pgws.canary.${process.pid}.${crypto.randomUUID().slice(0, 8)}`;

/** Starts a bridge. The HTTP server listens at once, even while the database is still unreachable. */
export async function createBridge(options: BridgeOptions): Promise<Bridge> {
  const { config, log } = options;
  const stats = createStats();
  const catalog = createCatalog(config);
  const channelsDocument = JSON.stringify(describeChannels(config));
  const probe = probeChannel();
  const payloadLog = log.child('payload');
  const databaseUp = Promise.withResolvers<void>();
  let server: BridgeServer | undefined;

  const listener = createListener({
    url: options.databaseUrl,
    reconnectMinMs: config.database.reconnectMinMs,
    reconnectMaxMs: config.database.reconnectMaxMs,
    probeChannel: probe,
    log: log.child('listener'),
    events: {
      notification(channel, payload) {
        if (channel === probe) return canary.receive(payload);
        const counters = stats.channel(channel);
        counters.received += 1;
        const encoded = catalog.encode(channel, payload);
        if (encoded.ok) {
          counters.delivered += server?.publish(channel, encoded.frame) ?? 0;
          return;
        }
        if (encoded.reason === 'json') counters.invalidJson += 1;
        else counters.invalidSchema += 1;
        payloadLog.warn('invalid payload dropped', {
          channel,
          reason: encoded.reason,
          issues: encoded.issues,
          prefix: payload.slice(0, 64),
        });
      },
      state(state) {
        if (state === 'up') {
          databaseUp.resolve();
          canary.start();
        }
        if (state === 'down' || state === 'stopped') canary.stop();
      },
      reconnected(channels) {
        stats.listenerReconnects += 1;
        server?.closeChannels(channels, Close.databaseRestart, 'database_restart');
      },
    },
  });

  const canary = createCanary({
    intervalMs: config.database.canaryIntervalMs,
    send: (token) => listener.notify(probe, token),
    onResult(ok, status) {
      if (!ok && status.consecutiveFailures === 2)
        log.warn('readiness canary failing: NOTIFY round trips are not coming back', { ...status });
    },
  });

  const metrics = createMetrics({
    stats,
    connections: () => server?.connections ?? 0,
    subscribers: () => server?.subscribers() ?? new Map(),
    listenerUp: () => listener.state === 'up',
    listenChannels: () => listener.channelCount,
    canary: () => canary.status(),
  });

  const json = (body: unknown, status = 200) =>
    Response.json(body, { status, headers: { 'cache-control': 'no-store' } });
  if (options.listenAfterDatabase) await databaseUp.promise;
  const bridgeServer = createServer(
    {
      config,
      catalog,
      listener,
      stats,
      log: log.child('server'),
      onChannelEmpty(channel) {
        // Bounded memory: counters of undeclared channels go when their last subscriber does.
        if (!catalog.declared(channel)) stats.channels.delete(channel);
      },
      routes: {
        '/': () =>
          new Response(options.consoleHtml ?? 'console.html not found\n', {
            headers: { 'content-type': 'text/html; charset=utf-8' },
          }),
        '/healthz': () => {
          const up = listener.state === 'up';
          return json(
            { status: up ? 'ok' : 'unavailable', database: listener.state, pid: process.pid },
            up ? 200 : 503,
          );
        },
        '/readyz': () => {
          const status = canary.status();
          return json({ ...status, database: listener.state }, status.ready ? 200 : 503);
        },
        '/metrics': async () =>
          new Response(await metrics.render(), { headers: { 'content-type': metrics.contentType } }),
        '/channels': () => new Response(channelsDocument, { headers: { 'content-type': 'application/json' } }),
      },
    },
    options.reusePort ?? false,
  );
  server = bridgeServer;

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      canary.stop();
      await bridgeServer.stop();
      await listener.stop();
    })();
    return stopped;
  };
  return { url: bridgeServer.url, stop, [Symbol.asyncDispose]: stop };
}
