/**
 * Durable channels in one process (docs/PROTOCOL.md "Durable channels"), wired: where the LISTEN connection
 * is (a lone process, or the primary of `[server] workers > 1`), the instance's reader (`durable.ts`) and
 * retention (`retention.ts`); in every process, the pager resumes read the table with (`protocol/archived.ts`)
 * and the `gap` of rows lost to retention.
 *
 * Subscribes to a durable channel wait until its position is the database's: `gate` wraps the listener's
 * `acquire`, so a `subscribed` answer (and a worker's snapshot, which the primary takes once its own acquire
 * is through) never reports a position the database did not give.
 */
import type { Logger } from '../base/log.ts';
import type { Stats } from '../base/stats.ts';
import { type Catalog, durableChannels } from '../channels/catalog.ts';
import { MARKER_CODE, wakeSeq } from '../channels/reference.ts';
import type { Cluster } from '../cluster/primary.ts';
import type { Config } from '../config/load.ts';
import type { Archive } from '../db/archive.ts';
import type { Listener, ListenerState } from '../db/listener.ts';
import { createPager, type Pager } from '../protocol/archived.ts';
import type { Position } from '../protocol/history.ts';
import type { Hub, Publish } from '../protocol/hub.ts';
import { createDurableReader } from './durable.ts';
import { createIngest, type Ingest } from './ingest.ts';
import type { Pipeline } from './pipeline.ts';
import { createRetention } from './retention.ts';

/** Options of {@link createDurability}. */
export interface DurabilityOptions {
  config: Pick<Config, 'channels' | 'server' | 'database'>;
  /** For the replication connection of `[database] ingest = "replication"`. */
  databaseUrl: string;
  catalog: Pick<Catalog, 'durable' | 'encode' | 'payloadJson'>;
  hub: Pick<Hub, 'rebase' | 'gap'>;
  /** This process's query connection: the reader's and retention's (where it reads), the pager's. */
  archive: Archive;
  /** Whether this process reads the instance's rows: false in a worker, which follows its primary. */
  reads: boolean;
  /** A row to validate and fan out (the pipeline's `stored`). */
  deliver: Pipeline['stored'];
  publish: Publish;
  /** Closes the plain sockets on the channels `which` picks (the server's `closePlain`). */
  closePlain(which: (channel: string) => boolean): void;
  /** The primary's workers, to tell them of gaps and of the replication connection; absent elsewhere. */
  workers?: (() => Pick<Cluster, 'gap' | 'ingest'> | undefined) | undefined;
  stats: Stats;
  log: Logger;
}

/** Durable channels in one process. */
export interface Durability {
  /** The durable channels, LISTENed from the start (their wake-ups must arrive with or without subscribers). */
  readonly channels: readonly string[];
  readonly pager: Pager;
  /** Takes a wake-up off the LISTEN connection; false when the notification is none (it goes on as usual). */
  notification(channel: string, payload: string): boolean;
  /** The LISTEN connection's state: at each `up` the reader reads the heads and catches up. */
  state(state: ListenerState): void;
  /** Rows up to `at.seq` are gone unread: subscribers get a `gap`, plain sockets 1012, workers are told. */
  gap(channel: string, at: Position): void;
  /** The listener with an `acquire` that, on a durable channel, also waits for the database's position. */
  gate<L extends Pick<Listener, 'acquire' | 'release'>>(listener: L): L;
  /** How the reader hears of new rows (`[database] ingest`): for readiness. */
  readonly ingest: Pick<Ingest, 'state' | 'ready'>;
  start(): void;
  stop(): Promise<void>;
}

// The hot cache: enough for most resumes to need no query, small enough to cost little per channel.
const CACHE_MAX = 1000;

/**
 * What a channel's stream keeps in memory: a durable channel its newest rows (its `retain`, up to 1000), any
 * other its `history`.
 */
export const keptInMemory =
  (config: Pick<Config, 'channels'>) =>
  (channel: string): number => {
    const declared = config.channels.get(channel);
    if (declared === undefined) return 0;
    return declared.durable ? Math.min(CACHE_MAX, declared.retain) : declared.history;
  };

/** Creates the durable side of one process. */
export function createDurability(options: DurabilityOptions): Durability {
  const { config, catalog, hub, stats, log } = options;
  const declared = durableChannels(config);
  const channels = declared.map((channel) => channel.name);
  const strays = new Set<string>();
  const gap = (channel: string, at: Position) => {
    stats.gaps += hub.gap(channel, at, options.publish);
    options.closePlain((name) => name === channel);
    options.workers?.()?.gap(channel, at);
  };
  const reader = options.reads
    ? createDurableReader({
        channels,
        archive: options.archive,
        hub,
        deliver: (channel, payload, at) => options.deliver(channel, payload, at),
        lost: gap,
        tooLarge(channel, seq, bytes) {
          stats.channel(channel).invalidReference.too_large += 1;
          log.warn('durable message over max_payload_bytes dropped', { channel, seq, bytes });
        },
        maxPayloadBytes: config.server.maxPayloadBytes,
        stats,
        log: log.child('durable'),
      })
    : undefined;
  const ingest = createIngest({
    config,
    channels,
    databaseUrl: options.databaseUrl,
    archive: options.archive,
    primary: options.reads,
    log: log.child('ingest'),
  });
  const retention = options.reads
    ? createRetention({ channels: declared, archive: options.archive, stats, log: log.child('retention') })
    : undefined;

  return {
    channels,
    pager: createPager({ archive: options.archive, catalog, maxPayloadBytes: config.server.maxPayloadBytes, stats }),
    notification(channel, payload) {
      if (payload.charCodeAt(0) !== MARKER_CODE) return false;
      const seq = wakeSeq(payload);
      if (seq === undefined) return false;
      if (catalog.durable(channel)) reader?.wake(channel, seq);
      else if (!strays.has(channel)) {
        strays.add(channel);
        log.warn(
          'pgws.send on a channel that is not durable here: its rows are kept but not delivered; declare it with durable = true',
          { channel },
        );
      }
      return true;
    },
    state(state) {
      if (state === 'up') void reader?.connected();
    },
    gap,
    gate(listener) {
      if (reader === undefined || channels.length === 0) return listener;
      const gated = Object.create(listener) as typeof listener;
      gated.acquire = async (channel, timeoutMs) => {
        await listener.acquire(channel, timeoutMs);
        if (!catalog.durable(channel)) return;
        try {
          await reader.ready(channel, timeoutMs ?? 5000);
        } catch (error) {
          listener.release(channel);
          throw error;
        }
      };
      return gated;
    },
    ingest,
    start() {
      retention?.start();
      // With ingest by replication, commits come from the replication stream; each new stream starts with a
      // catch-up from the table, as each LISTEN connect does.
      ingest.start({
        committed: (channel, seq) => reader?.wake(channel, seq),
        restarted: () => void reader?.connected(),
        changed: (ready) => options.workers?.()?.ingest(ready),
      });
    },
    async stop() {
      reader?.stop();
      retention?.stop();
      await ingest.stop();
    },
  };
}
