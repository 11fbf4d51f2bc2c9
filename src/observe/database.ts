/**
 * The metrics of the database side: the LISTEN connection, the readiness canary and PostgreSQL's
 * notification queue. Rows of the one metrics table (`table.ts` lists them after its own).
 */
import type { MetricDefinition } from './definition.ts';

/** The LISTEN connection's and the canary's rows. */
export const DATABASE_METRICS: readonly MetricDefinition[] = [
  {
    name: 'pgws_listener_reconnects_total',
    aggregate: 'first',
    type: 'counter',
    help: 'Times the LISTEN connection was restored after a loss.',
    labels: [],
    read: (s) => s.listener.reconnects,
  },
  {
    name: 'pgws_listen_channels',
    aggregate: 'first',
    type: 'gauge',
    help: 'Channels the LISTEN connection is listening to for clients (each has at least one subscriber).',
    labels: [],
    read: (s) => s.listener.channelCount,
  },
  {
    name: 'pgws_listener_up',
    aggregate: 'min',
    type: 'gauge',
    help: '1 when the LISTEN connection is established.',
    labels: [],
    read: (s) => (s.listener.state === 'up' ? 1 : 0),
  },
  {
    name: 'pgws_canary_ready',
    aggregate: 'min',
    type: 'gauge',
    help: '1 when a NOTIFY round trip on the current LISTEN connection succeeded within the last three canary intervals.',
    labels: [],
    read: (s) => (s.canary.status().ready ? 1 : 0),
  },
  {
    name: 'pgws_canary_latency_seconds',
    aggregate: 'max',
    type: 'gauge',
    help: 'Latency of the last successful canary NOTIFY round trip.',
    labels: [],
    read: (s) => {
      const latency = s.canary.status().latencyMs;
      return latency === undefined ? undefined : latency / 1000;
    },
  },
  {
    name: 'pgws_notification_queue_usage',
    aggregate: 'max',
    type: 'gauge',
    help: "PostgreSQL's pg_notification_queue_usage(), sampled with each canary (0 to 1).",
    labels: [],
    read: (s) => s.canary.status().queueUsage,
  },
];
