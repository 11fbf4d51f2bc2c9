/**
 * The instance's one reader of durable channels (docs/PROTOCOL.md "Durable channels"): per channel it keeps
 * the seq of the last row it delivered and reads `pgws.messages` after it, in batches by seq range, never
 * per client. A wake-up (`pgws.send`'s NOTIFY of the new seq) starts a read unless one is running, in which
 * case that one reads on; rows already read are never read again, so a burst of wake-ups costs one query
 * per batch, not one per message.
 *
 * After every (re)connect of the LISTEN connection it reads the heads and catches up from its last seq, in
 * order, before anything newer: what was committed while it was away is delivered, with no `gap`. Only rows
 * retention deleted before they were read break the stream (`lost`).
 *
 * Rows of a channel are consecutive seqs (no hole on abort; retention deletes a prefix), so a row after the
 * next expected one means those between are gone.
 */
import { backoffDelay } from '../base/backoff.ts';
import type { Logger } from '../base/log.ts';
import type { Stats } from '../base/stats.ts';
import { within } from '../base/timeout.ts';
import type { Archive } from '../db/archive.ts';
import type { Position } from '../protocol/history.ts';
import type { Hub } from '../protocol/hub.ts';

/** Options of {@link createDurableReader}. */
export interface DurableReaderOptions {
  /** The durable channels of the config. */
  channels: readonly string[];
  archive: Pick<Archive, 'heads' | 'readAfter' | 'positions'>;
  /** Between checks of the heads for rows no wake-up announced (5 s by default). */
  checkMs?: number;
  hub: Pick<Hub, 'rebase'>;
  /** A row to validate and fan out at its position (the pipeline's `stored`). */
  deliver(channel: string, payload: string, at: Position): void;
  /** Rows up to `at.seq` were deleted before they were read: subscribers get a `gap`. */
  lost(channel: string, at: Position): void;
  /** A row over `[server] max_payload_bytes`: not pulled, counted and logged. */
  tooLarge(channel: string, seq: number, bytes: number): void;
  maxPayloadBytes: number;
  stats: Stats;
  log: Logger;
}

/** The reader. */
export interface DurableReader {
  /** A wake-up: rows up to at least `seq` are committed on `channel`. */
  wake(channel: string, seq: number): void;
  /** The LISTEN connection is up (again): resolves once the heads are read; the catch-up goes on after. */
  connected(): Promise<void>;
  /** Resolves once the channel's position is the database's; rejects after `timeoutMs` or if pgws is missing. */
  ready(channel: string, timeoutMs: number): Promise<void>;
  stop(): void;
}

interface Reading {
  epoch: string | undefined;
  /** The seq of the last row delivered. */
  last: number;
  /** The highest seq a wake-up named: a read that stops short of it looks again, briefly (see `drain`). */
  wanted: number;
  running: Promise<void> | undefined;
  again: boolean;
  failures: number;
  /** Settles once the channel's position was first read (rejects while pgws is missing). */
  known: PromiseWithResolvers<void>;
}

const unknown = () => {
  const known = Promise.withResolvers<void>();
  known.promise.catch(() => {});
  return known;
};

// Rows per query: large enough that a backlog of 10,000 is ten queries, small enough to bound memory.
const BATCH = 1000;
// Reads again, with backoff from 1 ms to 250 ms, when a read stops short of a woken seq (see `drain`).
const SHORT_READS = 8;

/** The advice when pgws.send is missing, one line; `main.ts` stops on it at startup. */
export const MISSING_SEND =
  'durable channels need pgws.send, which this database does not have: run `bun run sql | psql "$DATABASE_URL"`';

/** Creates the reader; it reads nothing until `connected`. */
export function createDurableReader(options: DurableReaderOptions): DurableReader {
  const { archive, hub, stats, log } = options;
  const streams = new Map<string, Reading>();
  for (const channel of options.channels) {
    streams.set(channel, {
      epoch: undefined,
      last: 0,
      wanted: 0,
      running: undefined,
      again: false,
      failures: 0,
      known: unknown(),
    });
  }
  let missing = false;
  let stopped = false;
  let catchingUp = 0;
  let checker: Timer | undefined;
  let unannounced = false;

  /**
   * The safety net: a wake-up can be missed (a replication-mode bridge turned this channel's wake-ups off, a
   * NOTIFY lost with its connection between two reads), so every few seconds the heads are compared with what
   * was read, and a channel behind is read. One small query per instance per interval.
   */
  async function check(): Promise<void> {
    const heads = await archive.positions([...streams.keys()]);
    if (!heads.ok || stopped) return;
    for (const [channel, reading] of streams) {
      const seq = heads.value.get(channel);
      if (seq === undefined || reading.epoch === undefined || seq <= reading.last || reading.running) continue;
      if (!unannounced) {
        unannounced = true;
        log.warn('durable rows arrived without a wake-up; read by the periodic check (bridges of both ingest modes?)', {
          channel,
        });
      }
      void pump(channel, reading);
    }
  }

  async function drain(channel: string, reading: Reading): Promise<void> {
    let shortReads = 0;
    for (;;) {
      reading.again = false;
      const epoch = reading.epoch;
      if (stopped || epoch === undefined) return;
      const read = await archive.readAfter(channel, reading.last, BATCH, options.maxPayloadBytes);
      if (!read.ok) {
        reading.failures += 1;
        if (reading.failures === 1)
          log.warn('reading a durable channel failed; retrying', { channel, error: read.error });
        await Bun.sleep(backoffDelay(reading.failures, 100, 5000, Math.random));
        continue;
      }
      reading.failures = 0;
      for (const row of read.value) {
        if (reading.epoch !== epoch) break;
        if (row.seq !== reading.last + 1) {
          log.warn('durable rows deleted before they were read', { channel, from: reading.last + 1, to: row.seq - 1 });
          options.lost(channel, { epoch, seq: row.seq - 1 });
        }
        reading.last = row.seq;
        if (row.payload === undefined) options.tooLarge(channel, row.seq, row.bytes);
        else options.deliver(channel, row.payload, { epoch, seq: row.seq });
      }
      stats.durable.rowsRead += read.value.length;
      if (catchingUp > 0) stats.durable.catchUpRows += read.value.length;
      if (read.value.length === BATCH || reading.again) continue;
      // Logical replication reports a commit once its WAL is flushed, which can be a moment before the
      // writer's transaction is visible to other sessions; a NOTIFY never is. So a read that stops short of
      // the seq it was woken for looks again, a few times within half a second. A seq that never comes (a
      // wake-up forged with pg_notify) is then forgotten.
      if (reading.last >= reading.wanted) return;
      if (shortReads >= SHORT_READS) {
        reading.wanted = reading.last;
        return;
      }
      shortReads += 1;
      await Bun.sleep(backoffDelay(shortReads, 1, 250, Math.random));
    }
  }

  /** Reads until no row is left; a call while reading makes the running read go on instead. */
  function pump(channel: string, reading: Reading): Promise<void> {
    if (reading.running !== undefined) {
      reading.again = true;
      return reading.running;
    }
    reading.running = drain(channel, reading).finally(() => {
      reading.running = undefined;
    });
    return reading.running;
  }

  async function connected(): Promise<void> {
    checker ??= setInterval(() => void check(), options.checkMs ?? 5000);
    let heads = await archive.heads([...streams.keys()]);
    for (let failures = 1; !heads.ok && heads.reason === 'failed' && !stopped; failures++) {
      if (failures === 1) log.warn('reading the heads of durable channels failed; retrying', { error: heads.error });
      await Bun.sleep(backoffDelay(failures, 100, 5000, Math.random));
      heads = await archive.heads([...streams.keys()]);
    }
    if (!heads.ok) {
      missing = heads.reason !== 'failed';
      if (missing)
        log.error(
          heads.reason === 'missing' ? MISSING_SEND : 'durable channels: pgws.heads is not allowed to this role',
          {},
        );
      for (const reading of streams.values()) reading.known.reject(new Error(MISSING_SEND));
      return;
    }
    // Installed since a failed read (the next reconnect reads again): subscribes wait for the position anew.
    if (missing) for (const reading of streams.values()) reading.known = unknown();
    missing = false;
    const started = performance.now();
    const pumps: Promise<void>[] = [];
    for (const [channel, reading] of streams) {
      const head = heads.value.get(channel);
      if (head === undefined) continue;
      if (reading.epoch === undefined) {
        // First contact: the stream starts at the head; what came before is for resumes, from the table.
        reading.epoch = head.epoch;
        reading.last = head.seq;
        hub.rebase(channel, head);
        reading.known.resolve();
        continue;
      }
      if (reading.epoch !== head.epoch) {
        // pgws.streams lost the channel's row: a new stream, whose earlier rows this bridge cannot vouch for.
        log.warn('durable channel restarted at a new epoch', { channel, epoch: head.epoch });
        reading.epoch = head.epoch;
        reading.last = head.seq;
        options.lost(channel, head);
        continue;
      }
      pumps.push(pump(channel, reading));
    }
    if (pumps.length === 0) return;
    catchingUp += 1;
    void Promise.all(pumps).finally(() => {
      catchingUp -= 1;
      stats.durable.catchUpSeconds += (performance.now() - started) / 1000;
    });
  }

  return {
    wake(channel, seq) {
      const reading = streams.get(channel);
      if (reading === undefined || reading.epoch === undefined || seq <= reading.last) return;
      reading.wanted = Math.max(reading.wanted, seq);
      void pump(channel, reading);
    },
    connected,
    async ready(channel, timeoutMs) {
      const reading = streams.get(channel);
      if (reading === undefined) return;
      if (missing) throw new Error(MISSING_SEND);
      await within(reading.known.promise, timeoutMs, () => {
        throw new Error(`the position of durable channel "${channel}" was not read within ${timeoutMs} ms`);
      });
    },
    stop() {
      stopped = true;
      clearInterval(checker);
    },
  };
}
