/**
 * Retention of durable channels: every second, the rows of each durable channel past its `retain` messages
 * or older than its `retain_seconds` are deleted, oldest first, in batches of {@link TRIM_BATCH}. Writers
 * only insert new rows, so a batch never holds one up; another instance's bridge trimming the same channel
 * makes this one skip it for the round (`db/archive.ts` `trim`), so they never wait on each other.
 *
 * A row is kept while it is within both limits, give or take this interval.
 */
import type { Logger } from '../base/log.ts';
import type { Stats } from '../base/stats.ts';
import type { Archive } from '../db/archive.ts';

/** One durable channel's limits. */
export interface Retained {
  readonly name: string;
  readonly retain: number;
  readonly retainSeconds: number;
}

/** Options of {@link createRetention}. */
export interface RetentionOptions {
  channels: readonly Retained[];
  archive: Pick<Archive, 'trim'>;
  stats: Stats;
  log: Logger;
  /** Between rounds; one second by default. */
  intervalMs?: number;
}

// Small: one batch deletes in milliseconds, so a read queued behind it on the connection waits little.
export const TRIM_BATCH = 500;

/** Creates the retention loop; nothing runs before `start`. */
export function createRetention(options: RetentionOptions): { start(): void; stop(): void } {
  const { archive, stats, log, intervalMs = 1000 } = options;
  let timer: Timer | undefined;
  let stopped = false;
  let complained = false;

  async function round(): Promise<void> {
    for (const { name, retain, retainSeconds } of options.channels) {
      for (;;) {
        if (stopped) return;
        const trimmed = await archive.trim(name, retain, retainSeconds, TRIM_BATCH);
        if (!trimmed.ok) {
          // A missing table is the reader's to report; a privilege is this loop's, once.
          if (trimmed.reason === 'forbidden' && !complained) {
            complained = true;
            log.warn(
              "the bridge's role may not delete from pgws.messages, so durable channels are not trimmed: GRANT SELECT, DELETE ON pgws.messages TO the bridge's role",
              { error: trimmed.error },
            );
          }
          break;
        }
        stats.durable.deleted += trimmed.value;
        if (trimmed.value < TRIM_BATCH) break;
      }
    }
  }

  const tick = () => {
    timer = undefined;
    void round()
      .catch((error: unknown) => log.error('retention failed', { error }))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  return {
    start() {
      if (timer === undefined && !stopped && options.channels.length > 0) tick();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
