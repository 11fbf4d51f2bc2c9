/**
 * A latency histogram that generators fill per frame and the orchestrator merges: log-linear buckets
 * over microseconds (exact below 64 µs, then 32 buckets per power of two, so within ~3 %), the
 * HdrHistogram idea in a few lines. Recording is a couple of integer operations, no allocation.
 */

const LINEAR = 64;
const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
// Values are clamped to 2^31 - 1 µs (35 minutes): Math.clz32 works on 32-bit integers.
const MAX_US = 2 ** 31 - 1;
const BUCKETS = LINEAR + (31 - 6) * SUB;

/** Mergeable latency counts. */
export interface Histogram {
  readonly counts: Float64Array;
  count: number;
  maxMs: number;
}

/** An empty histogram. */
export function createHistogram(): Histogram {
  return { counts: new Float64Array(BUCKETS), count: 0, maxMs: 0 };
}

function indexOf(us: number): number {
  if (us < LINEAR) return us;
  const exponent = 31 - Math.clz32(us);
  return LINEAR + (exponent - 6) * SUB + ((us >>> (exponent - SUB_BITS)) & (SUB - 1));
}

/** The middle of a bucket, in microseconds. */
function bucketValue(index: number): number {
  if (index < LINEAR) return index;
  const exponent = Math.floor((index - LINEAR) / SUB) + 6;
  const sub = (index - LINEAR) % SUB;
  const width = 2 ** (exponent - SUB_BITS);
  return (SUB + sub) * width + width / 2;
}

/** Records one latency in milliseconds (negative values, from clock skew, count as 0). */
export function record(histogram: Histogram, ms: number): void {
  const us = Math.min(MAX_US, Math.max(0, Math.round(ms * 1000)));
  histogram.counts[indexOf(us)]! += 1;
  histogram.count += 1;
  if (ms > histogram.maxMs) histogram.maxMs = ms;
}

/** Non-empty buckets as [index, count] pairs, for IPC. */
export function toPairs(histogram: Histogram): [number, number][] {
  const pairs: [number, number][] = [];
  histogram.counts.forEach((count, index) => {
    if (count > 0) pairs.push([index, count]);
  });
  return pairs;
}

/** Adds buckets (from {@link toPairs}) into `into`. */
export function mergePairs(into: Histogram, pairs: readonly (readonly [number, number])[], maxMs: number): void {
  for (const [index, count] of pairs) {
    into.counts[index]! += count;
    into.count += count;
  }
  if (maxMs > into.maxMs) into.maxMs = maxMs;
}

/** Adds every count of `from` into `into`. */
export function merge(into: Histogram, from: Histogram): void {
  from.counts.forEach((count, index) => {
    into.counts[index]! += count;
  });
  into.count += from.count;
  if (from.maxMs > into.maxMs) into.maxMs = from.maxMs;
}

/** The q-quantile (0..1) in milliseconds; undefined for an empty histogram. */
export function quantile(histogram: Histogram, q: number): number | undefined {
  if (histogram.count === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * histogram.count));
  let seen = 0;
  for (let index = 0; index < BUCKETS; index++) {
    seen += histogram.counts[index] ?? 0;
    if (seen >= rank) return Math.min(bucketValue(index) / 1000, histogram.maxMs);
  }
  return histogram.maxMs;
}
