/**
 * Every metric the bridge exports, one row each: name, kind, help text, labels, how workers combine, and
 * how to read it from the plain counters of `Stats` and the live pieces at scrape time (the database side's
 * rows are `database.ts`'s). The README's metrics table is checked against these rows; `metrics.ts`
 * registers them with prom-client.
 */
import { CutoffReasons, ReferenceProblems, RevocationRefusals, WorkerRestartReasons } from '../base/reasons.ts';
import { Refusals } from '../base/refusals.ts';
import type { DurableStats } from '../base/stats.ts';
import { Closes } from '../base/wire.ts';
import { DATABASE_METRICS } from './database.ts';
import { byTransport, labelled, type MetricDefinition, perChannel, reasons } from './definition.ts';

/** An unlabelled counter of the durable channels' (`Stats.durable`). */
const durableCounter = (name: string, key: keyof DurableStats, help: string): MetricDefinition => ({
  name,
  type: 'counter',
  help,
  labels: [],
  read: (s) => s.stats.durable[key],
});

/** Every metric the bridge exports, all with the `pgws_` prefix. */
export const METRICS: readonly MetricDefinition[] = [
  {
    name: 'pgws_connections',
    type: 'gauge',
    help: 'Open connections by transport (ws: WebSockets; sse, ndjson: GET /events streams), those being admitted included.',
    labels: ['transport'],
    read: (s) => Object.entries(s.stats.open).map(([transport, count]) => [{ transport }, count]),
  },
  {
    name: 'pgws_channel_subscribers',
    type: 'gauge',
    help: 'Open sockets per channel.',
    labels: ['channel'],
    read: (s) =>
      [...s.stats.channels].filter(([, c]) => c.subscribers > 0).map(([channel, c]) => [{ channel }, c.subscribers]),
  },
  {
    name: 'pgws_subscriptions',
    type: 'gauge',
    help: 'Subscriptions by mode: plain sockets, and channels subscribed on multiplexed sockets.',
    labels: ['mode'],
    read: (s) => [
      [{ mode: 'plain' }, [...s.stats.channels.values()].reduce((sum, c) => sum + c.subscribers, 0)],
      [{ mode: 'multiplexed' }, s.hub.subscriptions],
    ],
  },
  {
    name: 'pgws_filter_topics',
    type: 'gauge',
    help: 'Distinct (channel, filter) topics of multiplexed subscriptions; each costs one filter test per notification.',
    labels: [],
    read: (s) => s.hub.filterTopics,
  },
  {
    name: 'pgws_history_messages',
    aggregate: 'max',
    type: 'gauge',
    help: 'Messages held for resume, per channel (at most its `history`).',
    labels: ['channel'],
    read: (s) => s.hub.held().map((h) => [{ channel: h.channel }, h.messages]),
  },
  {
    name: 'pgws_history_bytes',
    type: 'gauge',
    help: 'Payload text held for resume, per channel, in UTF-16 code units (about the bytes it occupies).',
    labels: ['channel'],
    read: (s) => s.hub.held().map((h) => [{ channel: h.channel }, h.bytes]),
  },
  {
    name: 'pgws_replays_total',
    type: 'counter',
    help: 'Subscribes with `since`, by whether the missed messages were replayed (recovered) or not.',
    labels: ['recovered'],
    read: (s) => [
      [{ recovered: 'true' }, s.stats.replays.recovered],
      [{ recovered: 'false' }, s.stats.replays.notRecovered],
    ],
  },
  {
    name: 'pgws_gaps_total',
    type: 'counter',
    help: '`gap` frames sent to multiplexed subscriptions (continuity broken: the LISTEN connection was lost).',
    labels: [],
    read: (s) => s.stats.gaps,
  },
  durableCounter(
    'pgws_durable_rows_read_total',
    'rowsRead',
    'Rows of durable channels read from pgws.messages by this instance (each row once per instance).',
  ),
  durableCounter(
    'pgws_durable_catchup_rows_total',
    'catchUpRows',
    'Rows of durable channels read while catching up after a reconnect of the LISTEN connection.',
  ),
  durableCounter(
    'pgws_durable_catchup_seconds_total',
    'catchUpSeconds',
    'Seconds spent catching up durable channels after reconnects (from the reconnect to the last row delivered).',
  ),
  durableCounter(
    'pgws_durable_table_replays_total',
    'tableReplays',
    'Resumes and `last` subscribes served from the table (the hot cache did not reach back far enough).',
  ),
  durableCounter(
    'pgws_durable_table_pages_total',
    'tablePages',
    'Pages (up to 500 rows) of durable channels read for replays.',
  ),
  durableCounter(
    'pgws_durable_deleted_total',
    'deleted',
    'Rows of durable channels deleted by retention (`retain`, `retain_seconds`).',
  ),
  {
    name: 'pgws_publishes_total',
    type: 'counter',
    help: 'Publishes by outcome (published, invalid, forbidden, rate_limited, too_large, unavailable) and transport (ws: publish frames; http: POST /channels/C/messages).',
    labels: ['outcome', 'transport'],
    read: (s) => byTransport(s.stats.publishes, 'outcome'),
  },
  {
    name: 'pgws_auth_failures_total',
    type: 'counter',
    help: 'Refused tokens and origins, by reason (missing, invalid, expired, revoked, forbidden, origin).',
    labels: ['reason'],
    read: (s) => labelled(s.stats.authFailures),
  },
  {
    name: 'pgws_subject_cutoffs_total',
    type: 'counter',
    help: `Connections closed with 4403 because their subject was cut off, by reason (${reasons(CutoffReasons)}).`,
    labels: ['reason'],
    read: (s) => labelled(s.stats.cutoffs),
  },
  {
    name: 'pgws_revocation_refusals_total',
    type: 'counter',
    help: `Tokens refused because a revocation (pgws.revoke) covers them, by reason (${reasons(RevocationRefusals)}).`,
    labels: ['reason'],
    read: (s) => labelled(s.stats.revocationRefusals),
  },
  {
    name: 'pgws_revocations',
    // Every process holds the same copy.
    aggregate: 'max',
    type: 'gauge',
    help: 'Revocations in force (rows of pgws.revocations), as this bridge last read them.',
    labels: [],
    read: (s) => s.revocations.size,
  },
  {
    name: 'pgws_notifications_received_total',
    type: 'counter',
    help: 'Notifications received from PostgreSQL.',
    labels: ['channel'],
    read: perChannel((c) => c.received),
  },
  {
    name: 'pgws_frames_delivered_total',
    type: 'counter',
    help: 'Frames sent to subscribers (one per subscriber per notification).',
    labels: ['channel'],
    read: perChannel((c) => c.delivered),
  },
  {
    name: 'pgws_notifications_invalid_total',
    type: 'counter',
    help: `Notifications dropped as invalid, by reason (json: not JSON; schema: failed the channel schema; ${reasons(ReferenceProblems)}).`,
    labels: ['channel', 'reason'],
    read: (s) =>
      [...s.stats.channels].flatMap(([channel, c]) => [
        [{ channel, reason: 'json' }, c.invalidJson] as const,
        [{ channel, reason: 'schema' }, c.invalidSchema] as const,
        // Only those that happened: most deployments never see a bad reference.
        ...Object.entries(c.invalidReference)
          .filter(([, count]) => count > 0)
          .map(([reason, count]) => [{ channel, reason }, count] as const),
      ]),
  },
  {
    name: 'pgws_payload_fetches_total',
    type: 'counter',
    help: 'Database round trips for payloads stored by pgws.notify: one per reference (never per client), plus one to tell a forged reference from an expired one.',
    labels: [],
    read: (s) => s.listener.queries.payloadRoundTrips,
  },
  {
    name: 'pgws_payloads_expired_total',
    type: 'counter',
    help: 'Stored payloads deleted from pgws.payloads after [database] large_payload_ttl seconds.',
    labels: [],
    read: (s) => s.stats.payloadsExpired,
  },
  {
    name: 'pgws_closes_total',
    type: 'counter',
    help: `Sockets and streams closed, by reason (${[...Object.keys(Closes), 'client'].join(', ')}) and transport.`,
    labels: ['reason', 'transport'],
    read: (s) => byTransport(s.stats.closes),
  },
  {
    name: 'pgws_upgrades_refused_total',
    type: 'counter',
    help: `WebSocket upgrades and streams refused, by reason (${Object.keys(Refusals).join(', ')}; a stream may also be refused with a pgws.v1 error code) and transport.`,
    labels: ['reason', 'transport'],
    read: (s) => byTransport(s.stats.refusals),
  },
  {
    name: 'pgws_worker_restarts_total',
    type: 'counter',
    help: `Workers the primary started again with [server] workers > 1, by reason (${reasons(WorkerRestartReasons)}).`,
    labels: ['reason'],
    read: (s) => labelled(s.stats.workerRestarts),
  },
  ...DATABASE_METRICS,
];
