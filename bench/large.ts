/**
 * Payloads beyond NOTIFY's limit: 64 KiB sent with pgws.notify (stored, notified by reference, fetched by
 * the server) beside 7,900 B sent with pg_notify, to 1, 100 and 1,000 clients of one server. Besides
 * frames/s and MB/s, the database round trips per notification from the server's own
 * pgws_payload_fetches_total: one, whatever the number of clients, is the point.
 */
import { installPgws } from './database.ts';
import type { NotifyFunction } from './notifier.ts';
import { bytes, type Column, check, count, num, ratio, section, times } from './report.ts';
import * as s from './scenario.ts';
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

const MB = 1_000_000;
const mbPerSecond = (r: TrialResult | undefined) => (r === undefined ? undefined : (r.framesPerSecond * r.size) / MB);

/** Runs the scenario. */
export async function large(context: s.Context): Promise<s.Outcome> {
  const { rig, say } = context;
  const repetitions = context.quick ? 1 : 3;
  await installPgws(rig.db.url);
  await using ours = await s.startOursFor(context);
  const fetches = async () => (await ours.metric('pgws_payload_fetches_total')) ?? Number.NaN;
  const trips = new Map<TrialResult, number>();
  // One variant's runs at one client count.
  const cells: (s.Runs & { via: NotifyFunction; clients: number; size: number })[] = [];
  for (const clients of CLIENTS) {
    const results = await s.inTurns(VARIANTS, repetitions, async ({ via, size }, round) => {
      say(`large: ${via}, ${count(clients, 'client')}, ${bytes(size)}, run ${round}/${repetitions}`);
      const before = await fetches();
      const result = await runTrial(rig, {
        label: via,
        target: ours,
        channel: `bench_large_${via === 'pg_notify' ? 'direct' : 'pgws'}_${clients}`,
        clients,
        size,
        via,
        send: { kind: 'burst', count: notifications(context.quick, clients, size) },
      });
      trips.set(result, ((await fetches()) - before) / result.sent);
      return result;
    });
    for (const [i, { via, size }] of VARIANTS.entries()) {
      const runs = s.runsOf(results[i] ?? []);
      if (runs !== undefined) cells.push({ ...runs, via, clients, size });
    }
  }
  const direct = (clients: number) => cells.find((c) => c.via === 'pg_notify' && c.clients === clients)?.r;
  const columns: Column<(typeof cells)[number]>[] = [
    ['sent with', (c) => c.via],
    ['clients', (c) => num(c.clients)],
    ['payload', (c) => bytes(c.size)],
    ...s.INTEGRITY,
    ...s.RATE,
    ['MB/s', ({ r }) => num(mbPerSecond(r))],
    ['round trips / notification', (c) => num(trips.get(c.r), 2)],
    ['× direct MB/s', (c) => times(ratio(mbPerSecond(c.r), mbPerSecond(direct(c.clients))))],
    ...s.TAIL,
  ];
  const notes = cells.flatMap((c) => s.runNotes(`${c.via}, ${count(c.clients, 'client')}`, c.runs));
  return {
    sections: [
      section('Large payloads: 64 KiB through pgws.notify beside 7,900 B direct, same server', columns, cells, [
        `${s.medianOf(repetitions)} (variants taking turns). MB/s = frames/s × payload ÷ 10^6. Round trips / notification = the server's pgws_payload_fetches_total over the trial ÷ notifications sent: a 64 KiB notification is one INSERT by the writer (UNLOGGED) and one SELECT by the server, whatever the number of clients. The credit window (512 KiB ahead of the slowest client) allows 8 notifications of 64 KiB in flight against 66 of 7,900 B, so the large rows also carry a fetch round trip inside a shorter pipeline.`,
        ...new Set(notes),
      ]),
    ],
    targets: cells
      .filter((c) => c.via === 'pgws.notify')
      .map((c) => {
        const worst = Math.max(...c.runs.map((r) => trips.get(r) ?? Number.NaN));
        const measured = `${num(worst, 2)} round trips per notification (worst run); lost ${num(c.r.lost)}, reordered ${num(c.r.reordered)}`;
        const name = `64 KiB via pgws.notify, ${count(c.clients, 'client')}: one database round trip per notification, nothing lost or reordered`;
        return check(name, measured, worst, { max: 1 }, c.runs.every(s.clean));
      }),
  };
}
