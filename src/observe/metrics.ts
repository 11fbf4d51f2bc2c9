/**
 * GET /metrics in the Prometheus text format, rendered by prom-client (the well-kept exposition
 * library; it runs unchanged on Bun). Every metric is one row of `table.ts`, filled at scrape time from the
 * plain counters in `Stats`, so the notification hot path never touches prom-client's label hashing.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { MetricDefinition, MetricsSource } from './definition.ts';
import { METRICS } from './table.ts';

/** A registry bound to one bridge; `render` produces the exposition text. */
export interface Metrics {
  readonly contentType: string;
  /** The exposition text; with workers, the whole server's (per worker when `byWorker`). */
  render(byWorker?: boolean): Promise<string>;
  /** This process's figures in the form `aggregate.ts` combines. */
  sample(): Promise<unknown>;
}

/** Builds the registry from {@link METRICS} (plus any extra rows) bound to one bridge's sources. */
export function createMetrics(source: MetricsSource, extra: readonly MetricDefinition[] = []): Metrics {
  const registry = new Registry();
  for (const definition of [...METRICS, ...extra]) {
    const Metric = definition.type === 'counter' ? Counter : Gauge;
    new Metric({
      name: definition.name,
      help: definition.help,
      labelNames: [...definition.labels],
      registers: [registry],
      aggregator: definition.aggregate ?? 'sum',
      collect(this: Counter | Gauge) {
        this.reset();
        const reading = definition.read(source);
        if (reading === undefined) return;
        if (typeof reading === 'number') return void this.inc(reading);
        for (const [labels, value] of reading) this.inc(labels, value);
      },
    });
  }
  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
    sample: () => registry.getMetricsAsJSON(),
  };
}
