/**
 * Reconnecting: the delay before the next attempt ({@link backoffDelay}) and the retry-forever loop that waits it
 * ({@link createReconnect}), shared by the LISTEN connection and the replication connection.
 */

/**
 * Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"): after n failures wait a random time in [min, min(max, min·2ⁿ)], so a fleet of bridges
 * does not reconnect to a restarted database in lockstep.
 */
export function backoffDelay(failures: number, minMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(failures, 30));
  return Math.round(minMs + random() * (ceiling - minMs));
}

/** A connection's state: `connecting` before the first success, `down` after a loss until the next success. */
export type ConnectionState = 'connecting' | 'up' | 'down' | 'stopped';

/** Options for {@link createReconnect}. */
export interface ReconnectOptions {
  /** The `[database]` keys of the same names. */
  timing: { readonly reconnectMinMs: number; readonly reconnectMaxMs: number };
  /** One connect; resolves true once up, false after a failure (its own to log; `failures` counts earlier ones). */
  attempt(failures: number): Promise<boolean>;
  /** Called once per change of state. */
  onState(state: ConnectionState): void;
  /** Called when an `up` connection is lost, before the state turns `down` (to log it). */
  onLost(): void;
}

/** The retry-forever loop of a connection (the LISTEN one, the replication one). */
export interface Reconnect {
  readonly state: ConnectionState;
  /** Failed attempts since the last success. */
  readonly failures: number;
  /** The first attempt. */
  start(): void;
  /** The connection is gone: retry after the backoff (ignored while an attempt runs: it reports for itself). */
  lost(): void;
  /** No more attempts; the state turns `stopped`. */
  stop(): void;
}

/** Creates the loop; nothing runs before {@link Reconnect.start}. */
export function createReconnect(options: ReconnectOptions): Reconnect {
  let state: ConnectionState = 'connecting';
  let failures = 0;
  let attempting = false;
  let retry: Timer | undefined;
  const setState = (next: ConnectionState) => {
    if (state === next) return;
    state = next;
    options.onState(next);
  };
  const schedule = () => {
    if (retry !== undefined || state === 'stopped') return;
    retry = setTimeout(
      () => {
        retry = undefined;
        void attempt();
      },
      backoffDelay(failures, options.timing.reconnectMinMs, options.timing.reconnectMaxMs, Math.random),
    );
  };
  const attempt = async () => {
    attempting = true;
    const up = await options.attempt(failures);
    attempting = false;
    if (state === 'stopped') return;
    if (up) {
      failures = 0;
      return setState('up');
    }
    failures += 1;
    if (state === 'connecting') setState('down');
    schedule();
  };
  return {
    get state() {
      return state;
    },
    get failures() {
      return failures;
    },
    start: () => void attempt(),
    lost() {
      if (state === 'stopped' || attempting) return;
      if (state === 'up') {
        options.onLost();
        setState('down');
      }
      schedule();
    },
    stop() {
      setState('stopped');
      clearTimeout(retry);
    },
  };
}
