/**
 * `[server] workers = N`: N server processes on one port (SO_REUSEPORT), each with its own LISTEN
 * connection. Fan-out at 1 and 2 workers, same clients and payloads, and the scaling between them.
 * Before measuring, a startup probe keeps opening WebSockets for 2 s from the first healthy
 * /healthz, as clients of a fresh deployment would, and counts refused upgrades: a worker that
 * already listens on the shared port but has no database connection yet refuses with 503.
 */

import { listeningSockets } from './procstat.ts';
import {
  anomalies,
  bytes,
  type Context,
  INTEGRITY_HEADERS,
  integrityCells,
  median,
  type Outcome,
  spread,
  TAIL_HEADERS,
  tailCells,
} from './scenario.ts';
import { SCHEMA_CHANNEL, startOurs } from './servers.ts';
import { num, ratio, times } from './stats.ts';
import type { Target } from './target.ts';
import { runTrial, type TrialResult } from './trial.ts';

const PROBE_MS = 2000;
const PROBE_BATCH = 10;
// Between batches: a gentle trickle, not a flood of short-lived sockets (TIME_WAIT).
const PROBE_PAUSE_MS = 5;

interface Row {
  readonly workers: number;
  readonly processes: number;
  readonly results: TrialResult[];
}

interface Started {
  readonly target: Target;
  readonly probe: string;
}

/**
 * Connects PROBE_BATCH clients at a time, every PROBE_PAUSE_MS, for PROBE_MS, and notes when all
 * `workers` sockets listen on the port (ms after the start, undefined if never).
 */
async function probeStartup(context: Context, target: Target, workers: number) {
  const { fleet, addresses } = context.rig;
  const started = performance.now();
  const until = started + PROBE_MS;
  let opened = 0;
  let refused = 0;
  let allListening: number | undefined;
  while (performance.now() < until) {
    if (allListening === undefined && listeningSockets(target.port) >= workers)
      allListening = performance.now() - started;
    const result = await fleet.connect({
      kind: 'ws',
      urls: target.urls('bench_probe', addresses),
      channel: 'bench_probe',
      count: PROBE_BATCH,
      timeoutMs: 5000,
    });
    opened += result.opened;
    refused += result.failed;
    await fleet.close();
    await Bun.sleep(PROBE_PAUSE_MS);
  }
  return { opened, refused, allListening };
}

async function start(context: Context, workers: number): Promise<Started> {
  const target = await startOurs({
    databaseUrl: context.rig.db.url,
    server: { workers },
    label: `ours, workers = ${workers}`,
    profileDir: context.profileDir,
    healthyInARow: 1,
  });
  try {
    const { opened, refused, allListening } = await probeStartup(context, target, workers);
    // Every worker listening on the port (each binds it only once its database connection is up).
    await target.whenHealthy(workers);
    const listening =
      allListening === undefined
        ? `not all ${workers} listening within it`
        : `all ${workers} listening ${num(allListening)} ms after it`;
    const probe = `workers = ${workers}: ${num(refused)} of ${num(opened + refused)} upgrades refused in the ${PROBE_MS / 1000} s after the first healthy /healthz; ${listening}`;
    return { target, probe };
  } catch (error) {
    await target.stop();
    throw error;
  }
}

/** Runs the workers scenario. */
export async function workers(context: Context): Promise<Outcome> {
  const { rig, say } = context;
  const clients = context.quick ? 100 : 1000;
  const sizes = context.quick ? [100] : [100, 7900];
  const repetitions = context.quick ? 1 : 3;
  const rows: (Row & { size: number })[] = [];
  const probes: string[] = [];
  for (const count of [1, 2]) {
    const { target, probe } = await start(context, count);
    probes.push(probe);
    try {
      for (const size of sizes) {
        const frames = size <= 100 ? (context.quick ? 100_000 : 2_000_000) : context.quick ? 10_000 : 300_000;
        const send = { kind: 'burst', count: Math.round(frames / clients) } as const;
        const results: TrialResult[] = [];
        for (let round = 1; round <= repetitions; round++) {
          say(`workers: ${count}, ${num(clients)} clients, ${bytes(size)}, run ${round}/${repetitions}`);
          results.push(
            await runTrial(rig, { label: target.label, target, channel: SCHEMA_CHANNEL, clients, size, send }),
          );
        }
        rows.push({ workers: count, processes: target.processes().length, results, size });
      }
    } finally {
      await target.stop();
    }
  }
  const one = (size: number) => median(rows.find((row) => row.workers === 1 && row.size === size)?.results ?? []);
  const notes = [
    ...new Set(
      rows.flatMap((row) =>
        row.results.flatMap((r, i) => anomalies(r, `${row.workers} workers, ${bytes(row.size)}, run ${i + 1}`)),
      ),
    ),
  ];
  notes.unshift(...probes.map((p) => `- startup probe, ${p}`));
  notes.unshift(
    `Median of ${repetitions} run${repetitions === 1 ? '' : 's'} by frames/s. Each worker has its own LISTEN connection, so the database delivers every notification once per worker. On this machine the generators alone take about two thirds of the two cores (CPU gen %), so a second worker has little idle CPU to scale into: read the ratio as "does not get worse", not as the scaling a larger machine would show.`,
  );
  return {
    sections: [
      {
        title: `Workers: fan-out to ${num(clients)} clients on the schema channel at 1 and 2 workers`,
        headers: [
          'workers',
          'server processes',
          'clients',
          'payload',
          ...INTEGRITY_HEADERS,
          'frames/s',
          'range of runs',
          '× 1 worker',
          ...TAIL_HEADERS,
        ],
        rows: rows.flatMap(({ workers: n, processes, results, size }) => {
          const r = median(results);
          if (r === undefined) return [];
          return [
            [
              String(n),
              String(processes),
              num(r.clients),
              bytes(size),
              ...integrityCells(r),
              num(r.framesPerSecond),
              spread(results),
              times(ratio(r.framesPerSecond, one(size)?.framesPerSecond)),
              ...tailCells(r),
            ],
          ];
        }),
        notes,
      },
    ],
    targets: [],
  };
}
