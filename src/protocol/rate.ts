/**
 * A token bucket for `[server] publish_rate`: one per socket, refilled continuously at `rate` tokens
 * per second and holding at most `rate` (the burst equals the rate, as the contract says), or 1 when
 * the rate is below one per second, since a bucket that can never hold a whole token refuses forever.
 *
 * Pure: the clock is injected, so tests step time instead of sleeping.
 */

// Far below any real rate's token per millisecond, far above float error on a few thousand additions.
const SLACK = 1e-9;

/** A per-socket allowance: `take` spends one token if there is one. */
export interface Bucket {
  /** True when the action may go ahead (a token was spent); false means refuse it, never queue it. */
  take(): boolean;
}

/**
 * Creates a full bucket. `rate` is per second and must be positive (`Infinity` never refuses); `now`
 * returns milliseconds and defaults to the monotonic `performance.now`, which wall-clock changes do not
 * move. Throws RangeError on a rate that is not positive, since that is a configuration mistake.
 */
export function createBucket(rate: number, now: () => number = () => performance.now()): Bucket {
  if (!(rate > 0)) throw new RangeError(`publish rate must be positive, got ${rate}`);
  if (rate === Number.POSITIVE_INFINITY) return { take: () => true };
  const burst = Math.max(1, rate);
  let tokens = burst;
  let last = now();
  return {
    take() {
      const time = now();
      // A clock that steps back (an injected one may) must not drain the bucket.
      const elapsed = Math.max(0, time - last);
      last = time;
      tokens = Math.min(burst, tokens + (elapsed * rate) / 1000);
      // Float rounding must not refuse a client that keeps exactly to the rate (1000/3 ms apart).
      if (tokens < 1 - SLACK) return false;
      tokens = Math.max(0, tokens - 1);
      return true;
    },
  };
}
