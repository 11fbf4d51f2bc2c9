/**
 * The bridge's counters and gauges, kept as plain numbers so the hot path is an increment. /metrics reads
 * them on scrape; nothing here formats or exports anything. Labels come from the tables in `http/wire.ts`.
 */
import type { CloseMetricLabel, RefusalLabel } from '../http/wire.ts';

/** Per-channel counters, plus the channel's open sockets (a gauge the server keeps). */
export interface ChannelStats {
  received: number;
  delivered: number;
  invalidJson: number;
  invalidSchema: number;
  subscribers: number;
}

/** All counters of one process. */
export interface Stats {
  readonly channels: Map<string, ChannelStats>;
  readonly closes: Map<CloseMetricLabel, number>;
  readonly refusals: Map<RefusalLabel, number>;
  /** Open sockets, upgrades in progress included. */
  connections: number;
  /** The counters of a channel, created on first use. */
  channel(name: string): ChannelStats;
  close(label: CloseMetricLabel): void;
  refuse(label: RefusalLabel): void;
}

/** Creates an empty set of counters. */
export function createStats(): Stats {
  const channels = new Map<string, ChannelStats>();
  const closes = new Map<CloseMetricLabel, number>();
  const refusals = new Map<RefusalLabel, number>();
  return {
    channels,
    closes,
    refusals,
    connections: 0,
    channel(name) {
      let stats = channels.get(name);
      if (stats === undefined) {
        stats = { received: 0, delivered: 0, invalidJson: 0, invalidSchema: 0, subscribers: 0 };
        channels.set(name, stats);
      }
      return stats;
    },
    close: (label) => closes.set(label, (closes.get(label) ?? 0) + 1),
    refuse: (label) => refusals.set(label, (refusals.get(label) ?? 0) + 1),
  };
}
