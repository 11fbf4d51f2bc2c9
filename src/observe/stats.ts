/**
 * The bridge's counters, kept as plain numbers so the hot path is an increment. /metrics reads them
 * on scrape; nothing here formats or exports anything.
 */
import type { RefusalReason } from '../http/wire.ts';

/** Why the server closed a socket (or the socket went away), as counted in metrics. */
export type CloseReason =
  | 'client'
  | 'slow_consumer'
  | 'receive_only'
  | 'too_big'
  | 'database_restart'
  | 'shutdown'
  | 'abnormal';

/** Per-channel counters. */
export interface ChannelStats {
  received: number;
  delivered: number;
  invalidJson: number;
  invalidSchema: number;
}

/** All counters of one process. */
export interface Stats {
  readonly channels: Map<string, ChannelStats>;
  readonly closes: Map<CloseReason, number>;
  readonly refusals: Map<RefusalReason, number>;
  listenerReconnects: number;
  /** The counters of a channel, created on first use. */
  channel(name: string): ChannelStats;
  close(reason: CloseReason): void;
  refuse(reason: RefusalReason): void;
}

/** Creates an empty set of counters. */
export function createStats(): Stats {
  const channels = new Map<string, ChannelStats>();
  const closes = new Map<CloseReason, number>();
  const refusals = new Map<RefusalReason, number>();
  return {
    channels,
    closes,
    refusals,
    listenerReconnects: 0,
    channel(name) {
      let stats = channels.get(name);
      if (stats === undefined) {
        stats = { received: 0, delivered: 0, invalidJson: 0, invalidSchema: 0 };
        channels.set(name, stats);
      }
      return stats;
    },
    close: (reason) => closes.set(reason, (closes.get(reason) ?? 0) + 1),
    refuse: (reason) => refusals.set(reason, (refusals.get(reason) ?? 0) + 1),
  };
}
