/**
 * Payloads beyond NOTIFY's limit (`--only large`): 64 KiB notifications sent with pgws.notify (stored,
 * notified by reference, fetched by the server) beside 7,900-byte ones sent directly with pg_notify, to
 * 1, 100 and 1,000 clients of one server in the same run. Reports frames/s, MB/s, and the database round
 * trips the server made per notification, read from its own pgws_payload_fetches_total: one per
 * notification whatever the number of clients is the point (the fetch is per notification, not per client).
 */
import postgres from 'postgres';
import { INSTALL_SQL } from '../src/db/script.ts';
import type { NotifyFunction } from './notifier.ts';
import {
  anomalies,
  bytes,
  type Context,
  clean,
  clientsText,
  INTEGRITY_HEADERS,
  integrityCells,
  median,
  type Outcome,
  spread,
  TAIL_HEADERS,
  tailCells,
} from './scenario.ts';
import { startOurs } from './servers.ts';
import { check, num, ratio, type TargetCheck, times } from './stats.ts';
import type { Target } from './target.ts';
import { runTrial, type TrialResult } from './trial.ts';

const CLIENTS = [1, 100, 1000] as const;
const VARIANTS = [
  { via: 'pg_notify', size: 7900 },
  { via: 'pgws.notify', size: 64 * 1024 },
] as const satisfies readonly { via: NotifyFunction; size: number }[];

/** Notifications per trial: about the frames of the fan-out scenario's 7,900-byte cells, fewer when large. */
function notifications(quick: boolean, clients: number, size: number): number {
  const large = size > 8000;
  if (clients === 1) return large ? (quick ? 2000 : 10_000) : quick ? 10_000 : 40_000;
  const frames = large ? (quick ? 10_000 : 100_000) : quick ? 20_000 : 400_000;
  return Math.round(frames / clients);
}

/** One cell's runs, with the round trips the server counted in each. */
interface Cell {
  readonly via: NotifyFunction;
  readonly clients: number;
  readonly size: number;
  readonly results: TrialResult[];
  /** Round trips per notification, per run (same order as `results`). */
  readonly trips: number[];
}

/** The server's own count of round trips for stored payloads. */
async function fetches(target: Target): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${target.port}/metrics`)).text();
  return Number(/^pgws_payload_fetches_total (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
}

/** Runs the scenario. */
export async function large(context: Context): Promise<Outcome> {
  const { rig, say } = context;
  const repetitions = context.quick ? 1 : 3;
  const admin = postgres(rig.db.url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(INSTALL_SQL).simple();
  } finally {
    await admin.end({ timeout: 1 });
  }
  const cells: Cell[] = [];
  const ours = await startOurs({ databaseUrl: rig.db.url, profileDir: context.profileDir });
  try {
    for (const clients of CLIENTS) {
      for (let round = 1; round <= repetitions; round++) {
        // Interleaved, so both variants see the same machine state.
        for (const { via, size } of VARIANTS) {
          let cell = cells.find((c) => c.via === via && c.clients === clients);
          if (cell === undefined) {
            cell = { via, clients, size, results: [], trips: [] };
            cells.push(cell);
          }
          say(`large: ${via}, ${clientsText(clients)}, ${bytes(size)}, run ${round}/${repetitions}`);
          const before = await fetches(ours);
          const result = await runTrial(rig, {
            label: via,
            target: ours,
            channel: `bench_large_${via === 'pg_notify' ? 'direct' : 'pgws'}_${clients}`,
            clients,
            size,
            via,
            send: { kind: 'burst', count: notifications(context.quick, clients, size) },
          });
          cell.results.push(result);
          cell.trips.push(((await fetches(ours)) - before) / result.sent);
        }
      }
    }
  } finally {
    await ours.stop();
  }
  return { sections: [section(cells, repetitions)], targets: targets(cells) };
}

const MB = 1_000_000;
const mbPerSecond = (r: TrialResult | undefined) => (r === undefined ? undefined : (r.framesPerSecond * r.size) / MB);
const tripsOf = (cell: Cell, r: TrialResult | undefined) => cell.trips[cell.results.indexOf(r as TrialResult)];

function section(cells: readonly Cell[], repetitions: number): Outcome['sections'][number] {
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const cell of cells) {
    const r = median(cell.results);
    if (r === undefined) continue;
    const direct = median(cells.find((c) => c.via === 'pg_notify' && c.clients === cell.clients)?.results ?? []);
    rows.push([
      cell.via,
      num(cell.clients),
      bytes(cell.size),
      ...integrityCells(r),
      num(r.framesPerSecond),
      num(mbPerSecond(r)),
      spread(cell.results),
      num(tripsOf(cell, r), 2),
      times(ratio(mbPerSecond(r), mbPerSecond(direct))),
      ...tailCells(r),
    ]);
    for (const [i, each] of cell.results.entries()) {
      notes.push(...anomalies(each, `${cell.via}, ${clientsText(cell.clients)}, run ${i + 1}`));
    }
  }
  return {
    title: 'Large payloads: 64 KiB through pgws.notify beside 7,900 B direct, same server',
    headers: [
      'sent with',
      'clients',
      'payload',
      ...INTEGRITY_HEADERS,
      'frames/s',
      'MB/s',
      'range of runs',
      'round trips / notification',
      '× direct MB/s',
      ...TAIL_HEADERS,
    ],
    rows,
    notes: [
      `Median of ${repetitions} run${repetitions === 1 ? '' : 's'} by frames/s (variants interleaved). MB/s = frames/s × payload ÷ 10^6. Round trips / notification = the server's pgws_payload_fetches_total over the trial ÷ notifications sent: a 64 KiB notification is one INSERT by the writer (UNLOGGED) and one SELECT by the server, whatever the number of clients. The credit window (512 KiB ahead of the slowest client) allows 8 notifications of 64 KiB in flight against 66 of 7,900 B, so the large rows also carry a fetch round trip inside a shorter pipeline.`,
      ...new Set(notes),
    ],
  };
}

function targets(cells: readonly Cell[]): TargetCheck[] {
  return cells
    .filter((cell) => cell.via === 'pgws.notify')
    .map((cell) => {
      const r = median(cell.results);
      const worst = Math.max(...cell.trips);
      const measured = `${num(worst, 2)} round trips per notification (worst run); lost ${num(r?.lost)}, reordered ${num(r?.reordered)}`;
      const name = `64 KiB via pgws.notify, ${clientsText(cell.clients)}: one database round trip per notification, nothing lost or reordered`;
      return check(name, measured, worst, { max: 1 }, cell.results.every(clean));
    });
}
