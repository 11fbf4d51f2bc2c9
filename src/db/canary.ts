/**
 * The readiness canary: every few seconds a NOTIFY on a private probe channel must come back through
 * the LISTEN connection. A connection check cannot see a wedged listener, or a transaction-mode pooler
 * that accepts LISTEN and never delivers; a round trip can.
 *
 * No I/O of its own: the sender is passed in and the listener hands probe notifications to `receive`.
 */

/** What /readyz reports. `ready` means a round trip succeeded within the last three intervals. */
export interface CanaryStatus {
  readonly ready: boolean;
  readonly latencyMs: number | undefined;
  readonly lastOkAgoMs: number | undefined;
  readonly queueUsage: number | undefined;
  readonly consecutiveFailures: number;
}

/** Options for {@link createCanary}. `send` issues the NOTIFY and resolves to the queue usage. */
export interface CanaryOptions {
  intervalMs: number;
  send: (token: string) => Promise<number>;
  onResult?: (ok: boolean, status: CanaryStatus) => void;
  now?: () => number;
}

/** A probe loop; `start` runs one probe at once, then one every interval. */
export interface Canary {
  receive(token: string): void;
  status(): CanaryStatus;
  probe(): void;
  start(): void;
  stop(): void;
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
    options.onResult?.(false, status());
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
      options.onResult?.(true, status());
    },
    status,
    probe,
    start() {
      if (timer !== undefined) return;
      probe();
      timer = setInterval(probe, options.intervalMs);
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
