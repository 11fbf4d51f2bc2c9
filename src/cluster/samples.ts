/**
 * The whole server's /metrics with `[server] workers > 1`: the primary asks every live worker for its figures
 * (prom-client's JSON form), waits at most a second for each, and combines them with its own. A worker that
 * does not answer in time is left out of that scrape, not waited for.
 */
import { type Clock, systemClock } from '../base/clock.ts';
import type { Logger } from '../base/log.ts';
import { within } from '../base/timeout.ts';
import type { WorkerSample } from '../observe/aggregate.ts';

const SAMPLE_TIMEOUT_MS = 1000;

/** Options of {@link createSampler}. */
export interface SamplerOptions<W> {
  /** The workers to ask now, with their index. */
  workers(): readonly (readonly [worker: W, index: number])[];
  /** Asks a worker for its figures under `id`; its answer comes back through `answered`. */
  ask(worker: W, id: number): void;
  /** This process's own figures. */
  sample(): Promise<unknown>;
  /** Every process's figures as one exposition text; per worker when `byWorker`. */
  aggregate(samples: readonly WorkerSample[], byWorker: boolean): Promise<string>;
  clock?: Clock | undefined;
  log: Logger;
}

/** Gathers and combines the workers' figures. */
export interface Sampler {
  /** A worker's answer to `ask`. */
  answered(id: number, metrics: unknown): void;
  scrape(byWorker: boolean): Promise<string>;
}

/** Creates the sampler of a primary. */
export function createSampler<W>(options: SamplerOptions<W>): Sampler {
  const { clock = systemClock, log } = options;
  const waiting = new Map<number, (metrics: unknown) => void>();
  let next = 0;
  const gather = async (): Promise<WorkerSample[]> => {
    const answers = options.workers().map(([worker, index]) => {
      const id = ++next;
      const { promise, resolve } = Promise.withResolvers<unknown>();
      waiting.set(id, resolve);
      options.ask(worker, id);
      return within(promise, SAMPLE_TIMEOUT_MS, () => undefined, clock)
        .then((metrics) => ({ worker: index, metrics }))
        .finally(() => waiting.delete(id));
    });
    const all = [{ worker: 0, metrics: await options.sample() }, ...(await Promise.all(answers))];
    const answered = all.filter((sample) => sample.metrics !== undefined);
    if (answered.length < all.length) {
      log.warn('workers did not answer the metrics request in time', { missing: all.length - answered.length });
    }
    return answered;
  };
  return {
    answered: (id, metrics) => waiting.get(id)?.(metrics),
    scrape: async (byWorker) => options.aggregate(await gather(), byWorker),
  };
}
