/**
 * GET /metrics in the Prometheus text format, rendered by prom-client (the well-kept exposition
 * library; it runs unchanged on Bun). Every metric is filled at scrape time from the plain counters in
 * {@link Stats}, so the notification hot path never touches prom-client's label hashing.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { CanaryStatus } from '../db/canary.ts';
import type { Stats } from './stats.ts';

/** Where the figures come from, read on each scrape. */
export interface MetricsSource {
  stats: Stats;
  connections: () => number;
  subscribers: () => ReadonlyMap<string, number>;
  listenerUp: () => boolean;
  listenChannels: () => number;
  canary: () => CanaryStatus;
}

/** A registry bound to one bridge; `render` produces the exposition text. */
export interface Metrics {
  readonly contentType: string;
  render(): Promise<string>;
}

/** Metric names share the `pgws_` prefix; see the README for each one's meaning. */
export function createMetrics(source: MetricsSource): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const { stats } = source;

  const perChannel = (
    name: string,
    help: string,
    pick: (s: Stats['channels'] extends Map<string, infer C> ? C : never) => number,
  ) =>
    new Counter({
      name,
      help,
      labelNames: ['channel'],
      registers,
      collect() {
        this.reset();
        for (const [channel, counters] of stats.channels) this.inc({ channel }, pick(counters));
      },
    });

  new Gauge({
    name: 'pgws_connections',
    help: 'Open WebSocket connections (including upgrades in progress).',
    registers,
    collect() {
      this.set(source.connections());
    },
  });
  new Gauge({
    name: 'pgws_channel_subscribers',
    help: 'Open sockets per channel.',
    labelNames: ['channel'],
    registers,
    collect() {
      this.reset();
      for (const [channel, count] of source.subscribers()) this.set({ channel }, count);
    },
  });
  perChannel('pgws_notifications_received_total', 'Notifications received from PostgreSQL.', (c) => c.received);
  perChannel(
    'pgws_frames_delivered_total',
    'Frames sent to subscribers (one per subscriber per notification).',
    (c) => c.delivered,
  );
  new Counter({
    name: 'pgws_notifications_invalid_total',
    help: 'Notifications dropped as invalid, by reason (json: not JSON; schema: failed the channel schema).',
    labelNames: ['channel', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const [channel, c] of stats.channels) {
        this.inc({ channel, reason: 'json' }, c.invalidJson);
        this.inc({ channel, reason: 'schema' }, c.invalidSchema);
      }
    },
  });
  new Counter({
    name: 'pgws_closes_total',
    help: 'Sockets closed, by reason (slow_consumer, receive_only, too_big, database_restart, shutdown, client, abnormal).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, count] of stats.closes) this.inc({ reason }, count);
    },
  });
  new Counter({
    name: 'pgws_upgrades_refused_total',
    help: 'WebSocket upgrades refused, by reason.',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, count] of stats.refusals) this.inc({ reason }, count);
    },
  });
  new Counter({
    name: 'pgws_listener_reconnects_total',
    help: 'Times the LISTEN connection was restored after a loss.',
    registers,
    collect() {
      this.reset();
      this.inc(stats.listenerReconnects);
    },
  });
  new Gauge({
    name: 'pgws_listen_channels',
    help: 'Channels the LISTEN connection is listening to for clients (each has at least one subscriber).',
    registers,
    collect() {
      this.set(source.listenChannels());
    },
  });
  new Gauge({
    name: 'pgws_listener_up',
    help: '1 when the LISTEN connection is established.',
    registers,
    collect() {
      this.set(source.listenerUp() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'pgws_canary_ready',
    help: '1 when a NOTIFY round trip succeeded within the last three canary intervals.',
    registers,
    collect() {
      this.set(source.canary().ready ? 1 : 0);
    },
  });
  new Gauge({
    name: 'pgws_canary_latency_seconds',
    help: 'Latency of the last successful canary NOTIFY round trip.',
    registers,
    collect() {
      const latency = source.canary().latencyMs;
      if (latency !== undefined) this.set(latency / 1000);
    },
  });
  new Gauge({
    name: 'pgws_notification_queue_usage',
    help: "PostgreSQL's pg_notification_queue_usage(), sampled with each canary (0 to 1).",
    registers,
    collect() {
      const usage = source.canary().queueUsage;
      if (usage !== undefined) this.set(usage);
    },
  });

  return { contentType: registry.contentType, render: () => registry.metrics() };
}
