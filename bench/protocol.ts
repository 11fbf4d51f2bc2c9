/**
 * The messages between the orchestrator (bench/run.ts, through bench/fleet.ts) and its generator
 * processes (bench/clients.ts), sent over Bun's IPC channel as JSON. Commands carry an `id` the
 * reply echoes; `progress` is the one unsolicited message (the notifier's credit).
 *
 * Payload format (built by bench/notifier.ts, read by bench/tracker.ts), padded to an exact size:
 *   {"r":RUN,"seq":SEQ,"t":SEND_TIME_MS,"p":"xxx…"}
 * RUN tells one measured case from any stray notification of an earlier one; SEQ is 0..count-1 and
 * SEQ % producers names the producer connection, whose own notifications must arrive in order;
 * SEND_TIME_MS is `performance.timeOrigin + performance.now()` of the notifier (sub-millisecond, and
 * comparable across processes on one machine). For filter cases the payload also carries
 * `"k":KEY` after SEQ (KEY = floor(SEQ / producers) % keys, bench/notifier.ts). A multiplexed client receives it as the `payload` of
 *   {"type":"message","channel":C,"seq":N,"payload":{"r":…}}
 * where N is the server's own count on channel C.
 */

/**
 * How a client receives: a plain-mode WebSocket on a bridge (`ws://host/<channel>`), a multiplexed one
 * (`ws://host/` with the subprotocol `pgws.v1`, subscribing once open), or a plain postgres.js
 * `sql.listen` (the ceiling).
 */
export type ClientKind = 'ws' | 'mux' | 'pg';

/**
 * What each multiplexed socket subscribes to once it is open. Notification SEQ travels on
 * `channels[floor(SEQ / producers) % channels.length]` (bench/notifier.ts, `Spread`), so a client tells
 * its channels apart by the payload alone.
 */
export interface MuxSubscribe {
  readonly channels: readonly string[];
  /**
   * Subscribe with the filter `{[field]: {"eq": i % modulus}}` (client i of the fleet), so each client
   * gets its share of the notifications (see ConnectCommand.modulus) through the server's filter;
   * undefined for no filter.
   */
  readonly filterField: string | undefined;
}

/** Open `count` clients; client i of the whole fleet goes to `urls[(first + i) % urls.length]`. */
export interface ConnectCommand {
  readonly type: 'connect';
  readonly kind: ClientKind;
  readonly urls: readonly string[];
  /** The channel (for `pg` clients; `ws` clients have it in the URL). */
  readonly channel: string;
  readonly first: number;
  readonly count: number;
  /**
   * Client i of the fleet should receive exactly the notifications whose group floor(SEQ / producers)
   * is i modulo `modulus` (1: all of them; groups as in bench/notifier.ts `Spread`). Its URL or its
   * filter decides what it gets; this is what it is checked against.
   */
  readonly modulus: number;
  /** For `mux` clients: what to subscribe to. */
  readonly subscribe: MuxSubscribe | undefined;
  /** Handshakes in flight at once per generator; more only overflows the listen backlog. */
  readonly concurrency: number;
  readonly timeoutMs: number;
  /**
   * An upgrade refused with 503 (a full process: `file_limit`, `connection_limit`) is tried again on a
   * fresh connection, which the kernel's SO_REUSEPORT hash may hand to another worker, after the
   * refusal's Retry-After, for as long as this many ms have not passed since the client's first
   * attempt; 0: never.
   */
  readonly retryRefusedMs: number;
}

/** Forget the previous case and expect notifications `0..expected-1` of run `run`. */
export interface ArmCommand {
  readonly type: 'arm';
  readonly run: number;
  readonly expected: number;
  readonly producers: number;
  /** Report progress each time every open client has received another `step` notifications. */
  readonly step: number;
}

/** Orchestrator → generator. */
export type Command = (
  | ConnectCommand
  | ArmCommand
  | { readonly type: 'report' }
  | { readonly type: 'count' }
  | { readonly type: 'close'; readonly timeoutMs: number }
  | { readonly type: 'exit' }
) & { readonly id: number };

/** What one generator saw in one case; arrays are per client, in the generator's client order. */
export interface GeneratorReport {
  /** What each client should receive of the armed run (its share of `expected`). */
  readonly expected: readonly number[];
  readonly unique: readonly number[];
  readonly duplicated: readonly number[];
  readonly reordered: readonly number[];
  /** Frames that were not this run's (earlier runs, unparsable, or not a `message` frame). */
  readonly stray: number;
  /** The first stray frame (its start), to say what it was. */
  readonly firstStray: string | undefined;
  /**
   * Multiplexed `message` frames whose server `seq` broke its channel's sequence: not the previous
   * one + 1 on an unfiltered subscription, not above it on a filtered one.
   */
  readonly seqBreaks: number;
  /** Close codes seen during the case (e.g. 1008 slow consumer), by code. */
  readonly closes: Readonly<Record<string, number>>;
  readonly lastReceiveMs: number;
  /** Every frame's latency, as an encoded HdrHistogram (bench/histogram.ts). */
  readonly latency: string;
}

/** How a connect went: sockets opened and failed, and how long the slowest generator took. */
export interface ConnectResult {
  readonly opened: number;
  readonly failed: number;
  readonly firstError: string | undefined;
  readonly ms: number;
  /** Upgrades answered with 503, and how many of them were tried again (generators only; see retryRefusedMs). */
  readonly refused?: number;
  readonly retried?: number;
}

/** Generator → orchestrator. */
export type Reply =
  | { readonly type: 'ready'; readonly id: 0 }
  | { readonly type: 'connected'; readonly id: number; readonly result: ConnectResult }
  | { readonly type: 'armed'; readonly id: number }
  | { readonly type: 'report'; readonly id: number; readonly report: GeneratorReport }
  | { readonly type: 'counted'; readonly id: number; readonly received: number }
  | { readonly type: 'closed'; readonly id: number; readonly ms: number }
  | { readonly type: 'progress'; readonly id: 0; readonly run: number; readonly count: number };

/** The clock every process stamps and reads payloads with, in milliseconds. */
export const clock = (): number => performance.timeOrigin + performance.now();
