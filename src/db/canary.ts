/**
 * The readiness canary: every few seconds a NOTIFY on a private probe channel must come back through
 * the LISTEN connection. A connection check cannot see a wedged listener, or a transaction-mode pooler
 * that accepts LISTEN and never delivers; a round trip can.
 *
 * No I/O of its own: the sender is passed in and the listener hands probe notifications to `receive`.
 */
import type { Logger } from '../base/log.ts';
import { PROBE_PREFIX } from '../base/name.ts';

/** A fresh probe channel for this process; private to it, so clients never learn its name. */
export const newProbeChannel = (): string => `${PROBE_PREFIX}${process.pid}.${crypto.randomUUID().slice(0, 8)}`;

/**
 * What /readyz reports. `ready` means a round trip succeeded on the current LISTEN connection within the
 * last three intervals.
 */
export interface CanaryStatus {
  readonly ready: boolean;
  readonly latencyMs: number | undefined;
  readonly lastOkAgoMs: number | undefined;
  readonly queueUsage: number | undefined;
  readonly consecutiveFailures: number;
}

/**
 * Options for {@link createCanary}. `send` issues the NOTIFY and resolves to the queue usage; it must use a
 * connection other than the LISTEN one: behind a transaction-mode pooler a NOTIFY sent on the listening
 * session comes back to that session and hides the fault.
 */
export interface CanaryOptions {
  intervalMs: number;
  send: (token: string) => Promise<number>;
  /**
   * Called once per failing episode (the first probe that does not come back, until one does again).
   * `everOk` is false when no round trip has come back since the last `restart`: then notifications are
   * not arriving on this connection at all.
   */
  onFailing?: (status: CanaryStatus, everOk: boolean) => void;
  now?: () => number;
}

/** A probe loop; `restart` forgets past round trips and probes at once, then every interval. */
export interface Canary {
  receive(token: string): void;
  status(): CanaryStatus;
  probe(): void;
  /** For a new LISTEN connection: only round trips through it count from now on. */
  restart(): void;
  stop(): void;
  /**
   * Resolves true once a round trip has come back since the last restart (at once if one has), false
   * when none does within `timeoutMs` or the canary is stopped first.
   */
  verified(timeoutMs: number): Promise<boolean>;
}

/** Creates the canary. Tokens are unique per probe, so a late echo is never mistaken for a new one. */
export function createCanary(options: CanaryOptions): Canary {
  const now = options.now ?? (() => performance.now());
  let pending: { token: string; sentAt: number } | undefined;
  let latencyMs: number | undefined;
  let lastOkAt: number | undefined;
  let queueUsage: number | undefined;
  let consecutiveFailures = 0;
  let sequence = 0;
  let timer: Timer | undefined;
  let failing = false;
  let waiters: Array<(ok: boolean) => void> = [];
  const settle = (ok: boolean) => {
    const current = waiters;
    waiters = [];
    for (const resolve of current) resolve(ok);
  };

  const status = (): CanaryStatus => {
    const ago = lastOkAt === undefined ? undefined : now() - lastOkAt;
    return {
      ready: ago !== undefined && ago <= options.intervalMs * 3,
      latencyMs,
      lastOkAgoMs: ago,
      queueUsage,
      consecutiveFailures,
    };
  };
  const fail = () => {
    pending = undefined;
    consecutiveFailures += 1;
    if (failing) return;
    failing = true;
    options.onFailing?.(status(), lastOkAt !== undefined);
  };

  const probe = () => {
    // The previous probe never came back within an interval: that is a failure in itself.
    if (pending !== undefined) fail();
    const token = `${process.pid}.${++sequence}.${Math.random().toString(36).slice(2)}`;
    pending = { token, sentAt: now() };
    options.send(token).then(
      (usage) => {
        queueUsage = usage;
      },
      () => {
        if (pending?.token === token) fail();
      },
    );
  };

  return {
    receive(token) {
      if (pending?.token !== token) return;
      latencyMs = now() - pending.sentAt;
      lastOkAt = now();
      pending = undefined;
      consecutiveFailures = 0;
      failing = false;
      settle(true);
    },
    status,
    probe,
    restart() {
      clearInterval(timer);
      pending = undefined;
      lastOkAt = undefined;
      latencyMs = undefined;
      consecutiveFailures = 0;
      failing = false;
      probe();
      timer = setInterval(probe, options.intervalMs);
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
      pending = undefined;
      lastOkAt = undefined;
      settle(false);
    },
    verified(timeoutMs) {
      if (lastOkAt !== undefined) return Promise.resolve(true);
      const { promise, resolve } = Promise.withResolvers<boolean>();
      // setTimeout takes a non-finite delay as 0, so "forever" gets no timer at all.
      const timeout = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            waiters = waiters.filter((waiter) => waiter !== done);
            resolve(false);
          }, timeoutMs)
        : undefined;
      const done = (ok: boolean) => {
        clearTimeout(timeout);
        resolve(ok);
      };
      waiters.push(done);
      return promise;
    },
  };
}

/**
 * The canary's `onFailing` for the bridge: a warning once round trips stop coming back, and the likely
 * cause spelled out when none ever came back (then nothing is delivered at all).
 */
export function logFailing(log: Logger): NonNullable<CanaryOptions['onFailing']> {
  return (status, everOk) => {
    if (everOk) {
      log.warn('readiness canary failing: NOTIFY round trips are not coming back', { ...status });
      return;
    }
    log.error(
      'notifications are not arriving: a NOTIFY sent from another connection never came back through the LISTEN connection. ' +
        'A transaction-mode pooler (PgBouncer pool_mode = transaction) between the bridge and PostgreSQL is the likely cause: ' +
        'connect the bridge to PostgreSQL directly or through a session-mode pool. Upgrades are refused with 503 until it works.',
      { ...status },
    );
  };
}
