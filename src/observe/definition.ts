/**
 * What a metric row is (`MetricDefinition`), where its figures come from (`MetricsSource`), and the small
 * readers the rows share. The rows themselves are `table.ts` and `database.ts`.
 */
import type { Revocations } from '../auth/revocations.ts';
import type { ChannelStats, Stats } from '../base/stats.ts';
import type { Canary } from '../db/canary.ts';
import type { Listener } from '../db/listener.ts';
import type { Queries } from '../db/queries.ts';
import type { Hub } from '../protocol/hub.ts';

/** Where the figures come from, read on each scrape. */
export interface MetricsSource {
  stats: Stats;
  listener: Pick<Listener, 'state' | 'channelCount' | 'reconnects'> & {
    readonly queries: Pick<Queries, 'payloadRoundTrips'>;
  };
  canary: Pick<Canary, 'status'>;
  hub: Pick<Hub, 'subscriptions' | 'filterTopics' | 'held'>;
  revocations: Pick<Revocations, 'size'>;
}

export type Labels = Record<string, string>;
/** One sample: a bare number, or labelled values. `undefined` leaves the series out (nothing measured yet). */
export type Reading = number | undefined | Iterable<readonly [Labels, number]>;

/** One metric: its name, kind, help text and how to read it. The README's table lists the same rows. */
export interface MetricDefinition {
  readonly name: string;
  readonly type: 'counter' | 'gauge';
  readonly help: string;
  readonly labels: readonly string[];
  /**
   * How `[server] workers` combine in the whole server's figure: summed (the default), or the primary's
   * (`first`: what only the instance's one LISTEN connection knows), or the least or most of the workers.
   */
  readonly aggregate?: 'first' | 'min' | 'max';
  read(source: MetricsSource): Reading;
}

/** A reading per channel, from each channel's counters. */
export const perChannel = (pick: (counters: ChannelStats) => number) => (source: MetricsSource) =>
  [...source.stats.channels].map(([channel, counters]) => [{ channel }, pick(counters)] as const);

/** A reading per reason, from a map of counts. */
export const labelled = <K extends string>(counts: ReadonlyMap<K, number>) =>
  [...counts].map(([reason, count]) => [{ reason }, count] as const);

/** Counts by transport and reason, as series labelled `transport` and `key` (`reason` unless told). */
export const byTransport = <T extends string, K extends string>(
  counts: ReadonlyMap<T, ReadonlyMap<K, number>>,
  key = 'reason',
) =>
  [...counts].flatMap(([transport, byReason]) =>
    [...byReason].map(([reason, count]) => [{ [key]: reason, transport }, count] as const),
  );

/** A help text's list of reasons with their meanings. */
export const reasons = (table: Readonly<Record<string, string>>) =>
  Object.entries(table)
    .map(([reason, meaning]) => `${reason}: ${meaning}`)
    .join('; ');
