/**
 * The bridge's counters and gauges, kept as plain numbers so the hot path is an increment. /metrics reads
 * them on scrape; nothing here formats or exports anything. Labels come from the tables in `wire.ts` and `reasons.ts`.
 */

import type { AuthFailure, CutoffReason, PublishOutcome, ReferenceProblem, RevocationRefusal } from './reasons.ts';
import type { RefusalLabel } from './refusals.ts';
import type { CloseMetricLabel } from './wire.ts';

/** Per-channel counters, plus the channel's open sockets (a gauge the server keeps). */
export interface ChannelStats {
  received: number;
  delivered: number;
  invalidJson: number;
  invalidSchema: number;
  /** References dropped (large payloads that could not be fetched, or too large), by reason. */
  invalidReference: Record<ReferenceProblem, number>;
  subscribers: number;
}

/** All counters of one process. */
export interface Stats {
  readonly channels: Map<string, ChannelStats>;
  readonly closes: Map<CloseMetricLabel, number>;
  readonly refusals: Map<RefusalLabel, number>;
  readonly publishes: Map<PublishOutcome, number>;
  readonly authFailures: Map<AuthFailure, number>;
  /** Connections closed because their subject was cut off (4403), by why. */
  readonly cutoffs: Map<CutoffReason, number>;
  /** Tokens refused because a revocation covers them, by why. */
  readonly revocationRefusals: Map<RevocationRefusal, number>;
  /** Resumes (subscribes with `since`) answered, by whether they were recovered. */
  readonly replays: { recovered: number; notRecovered: number };
  /** Open sockets, upgrades in progress included. */
  connections: number;
  /** `gap` frames sent (one per multiplexed subscription per broken stream). */
  gaps: number;
  /** Stored payloads (pgws.payloads) deleted by the TTL sweep. */
  payloadsExpired: number;
  /** The counters of a channel, created on first use. */
  channel(name: string): ChannelStats;
  close(label: CloseMetricLabel): void;
  refuse(label: RefusalLabel): void;
  publish(outcome: PublishOutcome): void;
  authFailure(reason: AuthFailure): void;
  cutoff(reason: CutoffReason): void;
  revocationRefusal(reason: RevocationRefusal): void;
  /** Stored payloads deleted by a sweep. */
  expired(rows: number): void;
}

const noReferences = (): Record<ReferenceProblem, number> => ({
  reference_malformed: 0,
  reference_forged: 0,
  reference_missing: 0,
  too_large: 0,
  reference_failed: 0,
});

/** Creates an empty set of counters. */
export function createStats(): Stats {
  const channels = new Map<string, ChannelStats>();
  const closes = new Map<CloseMetricLabel, number>();
  const refusals = new Map<RefusalLabel, number>();
  const publishes = new Map<PublishOutcome, number>();
  const authFailures = new Map<AuthFailure, number>();
  const cutoffs = new Map<CutoffReason, number>();
  const revocationRefusals = new Map<RevocationRefusal, number>();
  const count = <K>(map: Map<K, number>, key: K) => map.set(key, (map.get(key) ?? 0) + 1);
  return {
    channels,
    closes,
    refusals,
    publishes,
    authFailures,
    cutoffs,
    revocationRefusals,
    replays: { recovered: 0, notRecovered: 0 },
    connections: 0,
    gaps: 0,
    payloadsExpired: 0,
    channel(name) {
      let stats = channels.get(name);
      if (stats === undefined) {
        stats = {
          received: 0,
          delivered: 0,
          invalidJson: 0,
          invalidSchema: 0,
          invalidReference: noReferences(),
          subscribers: 0,
        };
        channels.set(name, stats);
      }
      return stats;
    },
    close: (label) => count(closes, label),
    refuse: (label) => count(refusals, label),
    publish: (outcome) => count(publishes, outcome),
    authFailure: (reason) => count(authFailures, reason),
    cutoff: (reason) => count(cutoffs, reason),
    revocationRefusal: (reason) => count(revocationRefusals, reason),
    expired(rows) {
      this.payloadsExpired += rows;
    },
  };
}
