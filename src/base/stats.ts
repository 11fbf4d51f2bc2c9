/**
 * The bridge's counters and gauges, kept as plain numbers so the hot path is an increment. /metrics reads
 * them on scrape; nothing here formats or exports anything. Labels come from the tables in `wire.ts` and `reasons.ts`.
 */

import type { ErrorCode } from './codes.ts';
import type {
  AuthFailure,
  CutoffReason,
  PublishOutcome,
  ReferenceProblem,
  RevocationRefusal,
  WorkerRestartReason,
} from './reasons.ts';
import type { RefusalLabel } from './refusals.ts';
import type { CloseMetricLabel, HeldTransport, Transport } from './wire.ts';

/** Why a request was refused: a refusal label, or (a stream refused by the protocol engine) a pgws.v1 error code. */
export type RefusalMetricLabel = RefusalLabel | ErrorCode;

/** Counts by transport, then by reason. */
export type ByTransport<T extends Transport, K> = Map<T, Map<K, number>>;

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

/** The durable channels' counters of one process. */
export interface DurableStats {
  /** Rows read from `pgws.messages` by the instance's reader (each once per instance). */
  rowsRead: number;
  /** Rows read while catching up after a (re)connect, and the seconds those catch-ups took. */
  catchUpRows: number;
  catchUpSeconds: number;
  /** Pages of a resume or a `last` read from the table (resumes the cache could not serve). */
  tablePages: number;
  /** Resumes and `last` subscribes served (in part) from the table. */
  tableReplays: number;
  /** Rows deleted by retention. */
  deleted: number;
}

/** All counters of one process. */
export interface Stats {
  readonly channels: Map<string, ChannelStats>;
  readonly closes: ByTransport<HeldTransport, CloseMetricLabel>;
  readonly refusals: ByTransport<HeldTransport, RefusalMetricLabel>;
  readonly publishes: ByTransport<Transport, PublishOutcome>;
  readonly authFailures: Map<AuthFailure, number>;
  /** Connections closed because their subject was cut off (4403), by why. */
  readonly cutoffs: Map<CutoffReason, number>;
  /** Tokens refused because a revocation covers them, by why. */
  readonly revocationRefusals: Map<RevocationRefusal, number>;
  /** Workers the primary started again, by why (only the primary's counts: it restarts them). */
  readonly workerRestarts: Map<WorkerRestartReason, number>;
  /** Resumes (subscribes with `since`) answered, by whether they were recovered. */
  readonly replays: { recovered: number; notRecovered: number };
  /** Open sockets and streams, upgrades and streams being admitted included: what `max_connections` caps. */
  readonly connections: number;
  /** The same, by transport. */
  readonly open: Readonly<Record<HeldTransport, number>>;
  /** `gap` frames sent (one per multiplexed subscription per broken stream). */
  gaps: number;
  /** Durable channels (docs/PROTOCOL.md "Durable channels"): their rows read, caught up, replayed, deleted. */
  readonly durable: DurableStats;
  /** Stored payloads (pgws.payloads) deleted by the TTL sweep. */
  payloadsExpired: number;
  /** The counters of a channel, created on first use. */
  channel(name: string): ChannelStats;
  /** One more connection (counted from its admission on). */
  connect(transport: HeldTransport): void;
  /** One connection fewer: it closed, or its admission was undone. */
  disconnect(transport: HeldTransport): void;
  close(label: CloseMetricLabel, transport: HeldTransport): void;
  refuse(label: RefusalMetricLabel, transport: HeldTransport): void;
  publish(outcome: PublishOutcome, transport: Transport): void;
  authFailure(reason: AuthFailure): void;
  cutoff(reason: CutoffReason): void;
  revocationRefusal(reason: RevocationRefusal): void;
  workerRestart(reason: WorkerRestartReason): void;
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
  const closes: Stats['closes'] = new Map();
  const refusals: Stats['refusals'] = new Map();
  const publishes: Stats['publishes'] = new Map();
  const authFailures = new Map<AuthFailure, number>();
  const open: Record<HeldTransport, number> = { ws: 0, sse: 0, ndjson: 0 };
  let connections = 0;
  const cutoffs = new Map<CutoffReason, number>();
  const revocationRefusals = new Map<RevocationRefusal, number>();
  const workerRestarts = new Map<WorkerRestartReason, number>();
  const count = <K>(map: Map<K, number>, key: K) => map.set(key, (map.get(key) ?? 0) + 1);
  const countBy = <T, K>(map: Map<T, Map<K, number>>, transport: T, key: K) => {
    let counts = map.get(transport);
    if (counts === undefined) {
      counts = new Map();
      map.set(transport, counts);
    }
    count(counts, key);
  };
  return {
    channels,
    closes,
    refusals,
    publishes,
    authFailures,
    cutoffs,
    revocationRefusals,
    workerRestarts,
    replays: { recovered: 0, notRecovered: 0 },
    get connections() {
      return connections;
    },
    open,
    gaps: 0,
    durable: { rowsRead: 0, catchUpRows: 0, catchUpSeconds: 0, tablePages: 0, tableReplays: 0, deleted: 0 },
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
    connect(transport) {
      connections += 1;
      open[transport] += 1;
    },
    disconnect(transport) {
      connections -= 1;
      open[transport] -= 1;
    },
    close: (label, transport) => countBy(closes, transport, label),
    refuse: (label, transport) => countBy(refusals, transport, label),
    publish: (outcome, transport) => countBy(publishes, transport, outcome),
    authFailure: (reason) => count(authFailures, reason),
    cutoff: (reason) => count(cutoffs, reason),
    revocationRefusal: (reason) => count(revocationRefusals, reason),
    workerRestart: (reason) => count(workerRestarts, reason),
    expired(rows) {
      this.payloadsExpired += rows;
    },
  };
}
