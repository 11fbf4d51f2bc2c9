/**
 * The whole server's /metrics with `[server] workers > 1`: every process's figures, gathered by the primary,
 * combined with prom-client's AggregatorRegistry as each metric's `aggregate` says (`metrics.ts`).
 */
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';

/** One process's `Metrics.sample()`: `worker` 0 is the primary. */
export interface WorkerSample {
  readonly worker: number;
  readonly metrics: unknown;
}

/**
 * The whole server's figures from every process's sample: each series combined as its definition says,
 * or, `byWorker`, every process's own series, labelled `worker="0"` (the primary), `"1"`, ...
 */
export async function aggregateMetrics(samples: readonly WorkerSample[], byWorker: boolean): Promise<string> {
  // The primary's first, so `first` means the primary's.
  const ordered = [...samples].sort((a, b) => a.worker - b.worker);
  const metrics = ordered.map(({ worker, metrics }) => {
    const sample = metrics as MetricObjectWithValues<MetricValue<string>>[];
    if (!byWorker) return sample;
    return sample.map((metric) => ({
      ...metric,
      values: metric.values.map((value) => ({ ...value, labels: { ...value.labels, worker: String(worker) } })),
    }));
  });
  return AggregatorRegistry.aggregate(metrics).metrics();
}
