/**
 * The TTL of stored payloads: deletes rows of `pgws.payloads` older than `[database] large_payload_ttl`,
 * so the table cannot grow without bound while a bridge runs.
 *
 * Why the bridge and not `pgws.notify`: the TTL is the bridge's setting; a delete inside the writer's
 * transaction would add to every large write and hold row locks until that transaction ends; and one
 * sweep every few seconds costs less than one per write. The price: rows written while no bridge runs
 * stay until one starts (its first sweep, at startup, removes them).
 */
import type { Logger } from '../base/log.ts';
import type { Swept } from './queries.ts';

/** Options of {@link createSweeper}. */
export interface SweeperOptions {
  ttlSeconds: number;
  /** One sweep (the listener's `sweepPayloads`). */
  sweep(ttlSeconds: number): Promise<Swept>;
  /** Rows a sweep deleted. */
  onExpired(count: number): void;
  log: Logger;
}

/** A running sweeper. */
export interface Sweeper {
  /** Sweeps now, then every {@link sweepIntervalMs}. */
  start(): void;
  /** Stops the timer; a sweep in progress ends with the query connection (the listener's `stop`). */
  stop(): void;
}

/**
 * A quarter of the TTL, between 250 ms and one minute: a row lives at most TTL plus this. Rows are not
 * deleted much sooner than the TTL would allow, so a bridge that is briefly slow still resolves them.
 */
export const sweepIntervalMs = (ttlSeconds: number): number => Math.min(60_000, Math.max(250, ttlSeconds * 250));

/** Creates the sweeper; nothing runs before `start`. */
export function createSweeper(options: SweeperOptions): Sweeper {
  const { log } = options;
  let timer: Timer | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  // Each kind of failure is logged once until a sweep succeeds again, not every interval.
  let reported: Extract<Swept, { ok: false }>['reason'] | undefined;

  async function once(): Promise<void> {
    const swept = await options.sweep(options.ttlSeconds);
    if (swept.ok) {
      reported = undefined;
      if (swept.deleted > 0) options.onExpired(swept.deleted);
      return;
    }
    if (reported === swept.reason) return;
    reported = swept.reason;
    if (swept.reason === 'missing') {
      log.debug('pgws is not installed: no stored payloads to sweep (bun run sql installs it)');
    } else if (swept.reason === 'forbidden') {
      log.warn(
        "the bridge's role may not delete from pgws.payloads, so stored payloads are not expired: GRANT SELECT, DELETE ON pgws.payloads TO the bridge's role",
        { error: swept.error },
      );
    } else {
      log.debug('sweep of stored payloads failed; retrying at the next interval', { error: swept.error });
    }
  }

  function tick(): void {
    timer = undefined;
    running = once()
      .catch((error: unknown) => log.error('sweep failed', { error }))
      .finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(tick, sweepIntervalMs(options.ttlSeconds));
      });
  }

  return {
    start() {
      if (timer === undefined && running === undefined && !stopped) tick();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
