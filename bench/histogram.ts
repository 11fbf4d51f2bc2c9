/**
 * Latency histograms: HdrHistogram (hdr-histogram-js, pure JS) over whole microseconds, 3 significant
 * digits (a percentile within 0.1 %), read in ms and sent over IPC in its compressed encoding. The client
 * processes do not record per frame: recordValue costs ~40 ns against ~2 for a typed-array store, and
 * they are this machine's bottleneck; latencies go into a typed array and into the histogram only when
 * the report is asked for, after the measured window.
 */
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';

export type { Histogram };

const BUCKET_BITS = 32;
const US_PER_MS = 1000;
// The typed array holds int32 microseconds (35 minutes).
const MAX_US = 2 ** 31 - 1;

/** An empty histogram; it grows to whatever latency is recorded. */
export const createHistogram = (): Histogram =>
  // The WebAssembly build would need an asynchronous init first; the pure-JS one just works on Bun.
  build({ bitBucketSize: BUCKET_BITS, numberOfSignificantValueDigits: 3, autoResize: true, useWebAssembly: false });

/** The q-quantile (0..1) in milliseconds, never above the largest value; undefined when empty. */
export function quantileMs(histogram: Histogram, q: number): number | undefined {
  if (histogram.totalCount === 0) return undefined;
  // HdrHistogram answers with the top of the value's bucket, which may lie just above the largest value.
  return Math.min(histogram.getValueAtPercentile(q * 100), histogram.maxValue) / US_PER_MS;
}

/** The largest latency in milliseconds; undefined when empty. */
export const maxLatencyMs = (histogram: Histogram): number | undefined =>
  histogram.totalCount === 0 ? undefined : histogram.maxValue / US_PER_MS;

/** A histogram as text for IPC (HdrHistogram's compressed base64 encoding). */
export const encodeHistogram = (histogram: Histogram): string => encodeIntoCompressedBase64(histogram);

/** The histogram {@link encodeHistogram} encoded. */
export const decodeHistogram = (text: string): Histogram => decodeFromCompressedBase64(text, BUCKET_BITS, false);

/**
 * One case's latencies in one client process, kept raw until `histogram()`; room for `expected` up front
 * (allocated now, outside the measured window).
 */
export function createSamples(expected: number) {
  let values = new Int32Array(Math.max(16, expected));
  let count = 0;
  return {
    /** Adds one latency in ms (whole µs; negative ones, from clock skew, count as 0). */
    add(ms: number) {
      if (count === values.length) {
        const grown = new Int32Array(count * 2);
        grown.set(values);
        values = grown;
      }
      values[count] = Math.min(MAX_US, Math.max(0, Math.round(ms * US_PER_MS)));
      count += 1;
    },
    histogram() {
      const histogram = createHistogram();
      for (let i = 0; i < count; i++) histogram.recordValue(values[i]!);
      return histogram;
    },
  };
}
