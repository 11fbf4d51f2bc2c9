/**
 * How the instance's reader (`durable.ts`) hears of new rows on durable channels: `[database] ingest`. With
 * `"notify"`, `pgws.send`'s NOTIFY arrives on the LISTEN connection (`durability.ts` takes it up); all that is
 * left here is to turn those wake-ups on at startup (`pgws.wake(channels, true)`), in case a replication-mode
 * bridge turned them off. With `"replication"`, in a lone process or the primary of `[server] workers > 1`, the
 * instance's one replication connection (`../db/replication.ts`) reports each commit, and
 * `pgws.wake(channels, false)` at every connect of it spares writers the NOTIFY. Workers do neither: their
 * primary reads for them.
 */
import type { ConnectionState } from '../base/backoff.ts';
import type { Logger } from '../base/log.ts';
import { durableChannels } from '../channels/catalog.ts';
import type { Config } from '../config/load.ts';
import type { Archive } from '../db/archive.ts';
import { checkReplication, createReplication } from '../db/replication.ts';

/** The ingest of one process. */
export interface Ingest {
  /** The replication connection's state; `notify` when there is none (notify mode, a worker, no durable channel). */
  readonly state: ConnectionState | 'notify';
  /** Whether new rows are being heard of now, for readiness: false while replication is not up. */
  readonly ready: boolean;
  /** Connects the replication connection, if any, reporting to `events`. */
  start(events: IngestEvents): void;
  stop(): Promise<void>;
}

/** Options for {@link createIngest}. */
export interface IngestOptions {
  config: Pick<Config, 'database'>;
  /** The durable channels of the config. */
  channels: readonly string[];
  databaseUrl: string;
  /** The query connection's `pgws.wake`. */
  archive: Pick<Archive, 'wake'>;
  /** False in a worker: its primary ingests for the instance. */
  primary: boolean;
  log: Logger;
}

/** What replication tells the reader. */
export interface IngestEvents {
  /** Rows up to `seq` committed on durable channel `channel`. */
  committed(channel: string, seq: number): void;
  /** A new replication stream began: what committed before it is only in the table, so catch up from there. */
  restarted(): void;
  /** The replication connection went up or down (`ready`): workers are told, for their `/readyz`. */
  changed(ready: boolean): void;
}

/**
 * At startup, before the bridge (`main.ts` exits 2 with it): why `[database] ingest = "replication"` cannot
 * work on this database, in one line, or undefined. A database that does not answer yet is not refused: the
 * replication connection retries, and logs the same line while it stays unfixed.
 */
export async function ingestRefusal(config: Config, url: string): Promise<string | undefined> {
  if (config.database.ingest !== 'replication' || durableChannels(config).length === 0) return undefined;
  return checkReplication(url);
}

/** Creates the ingest of this process; nothing connects before {@link Ingest.start}. */
export function createIngest(options: IngestOptions): Ingest {
  const { config, log } = options;
  const durable = options.channels;
  const replicating = config.database.ingest === 'replication' && options.primary && durable.length > 0;
  let warned = false;
  const wake = async (on: boolean) => {
    const result = await options.archive.wake(durable, on);
    if (result.ok || warned) return;
    warned = true;
    const message =
      result.reason === 'forbidden'
        ? `cannot call pgws.wake, so pgws.send may not ${on ? 'wake this bridge' : 'skip its NOTIFY'}: GRANT EXECUTE ON FUNCTION pgws.wake(text[], boolean) to this bridge's role`
        : result.reason === 'missing'
          ? 'pgws.wake is missing: run `bun run sql` on the database to update pgws'
          : 'pgws.wake failed';
    // Turning wake-ups back on matters only after a replication-mode bridge turned them off: a notify-mode
    // bridge whose role may not (the default for one that does not own pgws) says so at debug level only.
    if (on) log.debug(message, { error: result.error });
    else log.warn(message, { error: result.error });
  };
  const replication = replicating
    ? createReplication({
        url: options.databaseUrl,
        reconnectMinMs: config.database.reconnectMinMs,
        reconnectMaxMs: config.database.reconnectMaxMs,
        log: log.child('replication'),
      })
    : undefined;
  const channels = new Set(durable);

  return {
    get state() {
      return replication?.state ?? 'notify';
    },
    get ready() {
      return replication === undefined || replication.state === 'up';
    },
    start(events) {
      // A replication-mode bridge before this one may have turned them off.
      if (options.primary && durable.length > 0 && replication === undefined) void wake(true);
      replication?.start({
        // Another instance's durable channels share the table: only ours are read.
        committed: (channel, seq) => channels.has(channel) && events.committed(channel, seq),
        state(state) {
          events.changed(state === 'up');
          if (state !== 'up') return;
          void wake(false);
          events.restarted();
        },
        // Logged by the connection, which keeps retrying: an operator may fix it while the bridge runs.
        refused: () => {},
      });
    },
    stop: async () => replication?.stop(),
  };
}
