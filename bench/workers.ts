/**
 * `[server] workers = N` (N processes on one port, SO_REUSEPORT): fan-out at 1, 2 and 4 workers, and
 * beside the 4 the bare bridge as 4 processes (each its own LISTEN: the simplest way to spread a bridge
 * over processes), taking turns each round. A startup probe first opens WebSockets for 2 s from the
 * first healthy /healthz, as a fresh deployment's clients would, and counts refused upgrades.
 */
import { listeningSockets } from './procstat.ts';
import { bytes, type Column, check, count, num, ratio, section, times } from './report.ts';
import * as s from './scenario.ts';
import { SCHEMA_CHANNEL, startBare, type Target } from './servers.ts';
import { runTrial } from './trial.ts';

const WORKERS = [1, 2, 4] as const;
const MOST = 4;
const PROBE_MS = 2000;
const PROBE_BATCH = 10;
// Between batches: a gentle trickle, not a flood of short-lived sockets (TIME_WAIT).
const PROBE_PAUSE_MS = 5;

/** Connects PROBE_BATCH clients every PROBE_PAUSE_MS for PROBE_MS; notes when all workers listen. */
async function probeStartup(context: s.Context, target: Target, workers: number): Promise<string> {
  const { pool, addresses } = context.rig;
  const started = performance.now();
  let opened = 0;
  let refused = 0;
  let allListening: number | undefined;
  while (performance.now() < started + PROBE_MS) {
    if (allListening === undefined && listeningSockets(target.port) >= workers)
      allListening = performance.now() - started;
    const urls = target.urls('bench_probe', addresses);
    const result = await pool.connect({ kind: 'ws', urls, count: PROBE_BATCH, timeoutMs: 5000 });
    opened += result.opened;
    refused += result.failed;
    await pool.close();
    await Bun.sleep(PROBE_PAUSE_MS);
  }
  const listening =
    allListening === undefined
      ? `not all ${workers} listening within it`
      : `all ${workers} listening ${num(allListening)} ms after it`;
  return `${count(workers, 'worker')}: ${num(refused)} of ${num(opened + refused)} upgrades refused in the ${PROBE_MS / 1000} s after the first healthy /healthz; ${listening}`;
}

/** Runs the workers scenario. */
export async function workers(context: s.Context): Promise<s.Outcome> {
  const { rig, say, quick } = context;
  const clients = quick ? 100 : 1000;
  const sizes = quick ? [100] : [100, 7900];
  const repetitions = quick ? 1 : 3;
  const frames = (size: number) => (size <= 100 ? (quick ? 100_000 : 2_000_000) : quick ? 10_000 : 300_000);
  // One server's runs at one payload size.
  const rows: (s.Runs & { label: string; bare: boolean; workers: number; processes: number; size: number })[] = [];
  const probes: string[] = [];
  for (const n of WORKERS) {
    const label = `ours, ${count(n, 'worker')}`;
    await using ours = await s.startOursFor(context, { server: { workers: n }, label, healthyInARow: 1 });
    probes.push(await probeStartup(context, ours, n));
    // Each worker binds the port only once its database connection is up.
    await ours.whenHealthy(n);
    await using bare = n === MOST ? await startBare(rig.db.url, n) : undefined;
    await bare?.whenHealthy(n);
    const servers = bare === undefined ? [ours] : [ours, bare];
    for (const size of sizes) {
      const send = { kind: 'burst', count: Math.round(frames(size) / clients) } as const;
      const results = await s.inTurns(servers, repetitions, (target, round) => {
        say(`workers: ${target.label}, ${num(clients)} clients, ${bytes(size)}, run ${round}/${repetitions}`);
        const channel = target === bare ? 'bench_workers_bare' : SCHEMA_CHANNEL;
        return runTrial(rig, { label: target.label, target, channel, clients, size, send });
      });
      for (const [i, target] of servers.entries()) {
        const runs = s.runsOf(results[i] ?? []);
        const processes = target.processes().length;
        if (runs !== undefined)
          rows.push({ ...runs, label: target.label, bare: target === bare, workers: n, processes, size });
      }
    }
  }
  const find = (bare: boolean, workers: number, size: number) =>
    rows.find((row) => row.bare === bare && row.workers === workers && row.size === size)?.r;
  const columns: Column<(typeof rows)[number]>[] = [
    ['server', (row) => row.label],
    ['server processes', (row) => String(row.processes)],
    ['clients', ({ r }) => num(r.clients)],
    ['payload', (row) => bytes(row.size)],
    ...s.INTEGRITY,
    ...s.RATE,
    ['× 1 worker', ({ r, size }) => times(ratio(r.framesPerSecond, find(false, 1, size)?.framesPerSecond))],
    ...s.TAIL,
  ];
  const notes = rows.flatMap((row) => s.runNotes(`${row.label}, ${bytes(row.size)}`, row.runs));
  const title = `Workers: fan-out to ${num(clients)} clients on the schema channel at 1, 2 and ${MOST} workers, beside the bare bridge as ${MOST} processes`;
  return {
    sections: [
      section(title, columns, rows, [
        `${s.medianOf(repetitions)}. The bare rows are bench/bare.ts run as ${MOST} processes on one port (SO_REUSEPORT), each its own LISTEN connection, so the database delivers every notification once per process; its server and the ${MOST}-worker one take turns round by round. On this machine the generators alone take about two thirds of the two cores (CPU gen %), so added workers have little idle CPU to scale into: read the ratios as "does not get worse", not as the scaling a larger machine would show.`,
        ...probes.map((probe) => `- startup probe, ${probe}`),
        ...new Set(notes),
      ]),
    ],
    targets: sizes.map((size) => {
      const ours = find(false, MOST, size)?.framesPerSecond;
      const bare = find(true, MOST, size)?.framesPerSecond;
      return check(
        `${MOST} workers, every feature on ≥ 0.9 × bare bridge as ${MOST} processes, ${bytes(size)}`,
        `${num(ours)} vs ${num(bare)} frames/s`,
        ratio(ours, bare),
        { min: 0.9 },
      );
    }),
  };
}
