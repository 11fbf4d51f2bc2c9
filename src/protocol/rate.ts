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

/** Buckets by key, for publishes that arrive without a socket to keep a bucket in (`POST /channels/C/messages`). */
export interface Buckets {
  /** The bucket of `key` (a subject, or a client address), made full on first use. */
  get(key: string): Bucket;
  /** Keys held now. */
  readonly size: number;
}

/**
 * Creates an empty table of buckets at `rate` per second. A bucket left alone until it is full again is the
 * same as a new one, so such buckets are forgotten (checked at most once per refill time): the table holds
 * only the keys that published lately, however many addresses come and go.
 */
export function createBuckets(rate: number, now: () => number = () => performance.now()): Buckets {
  const held = new Map<string, { readonly bucket: Bucket; used: number }>();
  // Past this an idle bucket has refilled completely: its burst (max(1, rate)) at `rate` per second.
  const refillMs = rate >= 1 ? 1000 : 1000 / rate;
  let swept = now();
  const sweep = (time: number) => {
    swept = time;
    for (const [key, entry] of held) if (time - entry.used >= refillMs) held.delete(key);
  };
  return {
    get(key) {
      const time = now();
      if (time - swept >= refillMs) sweep(time);
      let entry = held.get(key);
      if (entry === undefined) {
        entry = { bucket: createBucket(rate, now), used: time };
        held.set(key, entry);
      }
      entry.used = time;
      return entry.bucket;
    },
    get size() {
      return held.size;
    },
  };
}
