/**
 * `[server] workers = N`: N server processes on one port (SO_REUSEPORT). Fan-out at 1, 2 and 4 workers,
 * same clients and payloads, the scaling between them, and beside the 4 workers the same fan-out through
 * the bare bridge as 4 processes, taking turns round by round: the simplest way to spread a bridge over
 * processes (each its own LISTEN, so the database delivers every notification once per process), from
 * the same run, as the fan-out scenario reads one process of ours against one bare one.
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
import { SCHEMA_CHANNEL, startBare, startOurs } from './servers.ts';
import { check, num, ratio, times } from './stats.ts';
import type { Target } from './target.ts';
import { runTrial, type TrialResult } from './trial.ts';

const BASELINE_WORKERS = 4;
const PROBE_MS = 2000;
const PROBE_BATCH = 10;
// Between batches: a gentle trickle, not a flood of short-lived sockets (TIME_WAIT).
const PROBE_PAUSE_MS = 5;

/** One server to measure: ours with a number of workers, or the bare bridge as that many processes. */
interface Variant {
  readonly workers: number;
  readonly bare?: boolean;
}

interface Row {
  readonly variant: Variant;
  readonly processes: number;
  readonly size: number;
  readonly results: TrialResult[];
}

interface Started {
  readonly variant: Variant;
  readonly target: Target;
  readonly probe: string;
}

const codeOf = (variant: Variant) => (variant.bare ? 'bare (a LISTEN per process)' : 'ours');

/** "4 workers", or "bare, 4 processes". */
const nameOf = ({ workers, bare }: Variant) =>
  bare ? `bare, ${workers} processes` : `${workers} worker${workers === 1 ? '' : 's'}`;

/** Clients, payload sizes and rounds: small with --quick. */
const plan = (quick: boolean) => ({
  clients: quick ? 100 : 1000,
  sizes: quick ? [100] : [100, 7900],
  repetitions: quick ? 1 : 3,
  frames: (size: number) => (size <= 100 ? (quick ? 100_000 : 2_000_000) : quick ? 10_000 : 300_000),
});

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

async function start(context: Context, variant: Variant): Promise<Started> {
  const { workers } = variant;
  if (variant.bare) {
    const bare = await startBare(context.rig.db.url, workers);
    await bare.whenHealthy(workers);
    return { variant, target: bare, probe: '' };
  }
  const target = await startOurs({
    databaseUrl: context.rig.db.url,
    server: { workers },
    label: `ours, ${nameOf(variant)}`,
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
    const probe = `${nameOf(variant)}: ${num(refused)} of ${num(opened + refused)} upgrades refused in the ${PROBE_MS / 1000} s after the first healthy /healthz; ${listening}`;
    return { variant, target, probe };
  } catch (error) {
    await target.stop();
    throw error;
  }
}

/**
 * Starts a group's servers, then runs each size's rounds with the servers taking turns, in another
 * order each round, so drift on a shared machine favours none of them; stops them all at the end.
 */
async function measureGroup(context: Context, group: readonly Variant[], probes: string[]): Promise<Row[]> {
  const { clients, sizes, repetitions, frames } = plan(context.quick);
  const started: Started[] = [];
  const rows: Row[] = [];
  try {
    for (const variant of group) {
      const server = await start(context, variant);
      started.push(server);
      if (server.probe !== '') probes.push(server.probe);
    }
    for (const size of sizes) {
      const send = { kind: 'burst', count: Math.round(frames(size) / clients) } as const;
      const sized = started.map(({ variant, target }) => ({
        variant,
        processes: target.processes().length,
        size,
        results: [] as TrialResult[],
      }));
      for (let round = 1; round <= repetitions; round++) {
        for (let turn = 0; turn < started.length; turn++) {
          const index = (turn + round - 1) % started.length;
          const { target } = started[index] as Started;
          context.say(`workers: ${target.label}, ${num(clients)} clients, ${bytes(size)}, run ${round}/${repetitions}`);
          const result = await runTrial(context.rig, {
            label: target.label,
            target,
            channel: started[index]?.variant.bare ? 'bench_workers_bare' : SCHEMA_CHANNEL,
            clients,
            size,
            send,
          });
          sized[index]?.results.push(result);
        }
      }
      rows.push(...sized);
    }
  } finally {
    await Promise.all(started.map(({ target }) => target.stop()));
  }
  return rows;
}

/** Runs the workers scenario. */
export async function workers(context: Context): Promise<Outcome> {
  const { clients, sizes, repetitions } = plan(context.quick);
  const groups: Variant[][] = [
    [{ workers: 1 }],
    [{ workers: 2 }],
    [{ workers: BASELINE_WORKERS }, { workers: BASELINE_WORKERS, bare: true }],
  ];
  const rows: Row[] = [];
  const probes: string[] = [];
  for (const group of groups) rows.push(...(await measureGroup(context, group, probes)));

  const pick = (size: number, match: (variant: Variant) => boolean) =>
    median(rows.find((row) => row.size === size && match(row.variant))?.results ?? []);
  const one = (size: number) => pick(size, (v) => v.workers === 1 && !v.bare);
  const notes = [
    ...new Set(
      rows.flatMap((row) =>
        row.results.flatMap((r, i) => anomalies(r, `${nameOf(row.variant)}, ${bytes(row.size)}, run ${i + 1}`)),
      ),
    ),
  ];
  notes.unshift(...probes.map((p) => `- startup probe, ${p}`));
  notes.unshift(
    `Median of ${repetitions} run${repetitions === 1 ? '' : 's'} by frames/s. The bare rows are bench/bare.ts run as ${BASELINE_WORKERS} processes on one port (SO_REUSEPORT), each its own LISTEN connection, so the database delivers every notification once per process; it and our ${BASELINE_WORKERS}-worker server take turns round by round. On this machine the generators alone take about two thirds of the two cores (CPU gen %), so added workers have little idle CPU to scale into: read the ratios as "does not get worse", not as the scaling a larger machine would show.`,
  );
  return {
    sections: [
      {
        title: `Workers: fan-out to ${num(clients)} clients on the schema channel at 1, 2 and ${BASELINE_WORKERS} workers, beside the bare bridge as ${BASELINE_WORKERS} processes`,
        headers: [
          'code',
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
        rows: rows.flatMap((row) => {
          const r = median(row.results);
          if (r === undefined) return [];
          return [
            [
              codeOf(row.variant),
              String(row.variant.workers),
              String(row.processes),
              num(r.clients),
              bytes(row.size),
              ...integrityCells(r),
              num(r.framesPerSecond),
              spread(row.results),
              times(ratio(r.framesPerSecond, one(row.size)?.framesPerSecond)),
              ...tailCells(r),
            ],
          ];
        }),
        notes,
      },
    ],
    targets: sizes.map((size) => {
      const ours = pick(size, (v) => v.workers === BASELINE_WORKERS && !v.bare);
      const base = pick(size, (v) => v.bare === true);
      return check(
        `${BASELINE_WORKERS} workers, every feature on ≥ 0.9 × bare bridge as ${BASELINE_WORKERS} processes, ${bytes(size)}`,
        `${num(ours?.framesPerSecond)} vs ${num(base?.framesPerSecond)} frames/s`,
        ratio(ours?.framesPerSecond, base?.framesPerSecond),
        { min: 0.9 },
      );
    }),
  };
}
