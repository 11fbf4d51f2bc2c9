/**
 * The scale scenario's profile of the delivery window (bench/timeline.ts measures it): who spent the
 * CPU between the NOTIFY and the last receipt, when the servers started and stopped sending, and, from
 * those numbers, what bounds that time, in plain words: the co-located clients still reading after the
 * servers had sent everything, the machine's cores shared by the servers' sending (ours and Bun's work
 * in user mode, the kernel's in system mode) and the clients' reading, or waiting.
 */
import { availableParallelism } from 'node:os';
import { ms, num, type Section } from './stats.ts';
import { type Activity, activity, type DeliveryWindow, type GroupWindow } from './timeline.ts';
import type { TrialResult } from './trial.ts';

/** One row of the profile: its name, what the trial measured, and its window. */
export interface Profiled {
  readonly name: string;
  readonly result: TrialResult;
  readonly window: DeliveryWindow | undefined;
}

// Servers done this early in the window leave the rest of it to the clients.
const SERVERS_DONE_SHARE = 0.75;
const SATURATED = 0.9;

const cpuMs = (g: GroupWindow | undefined) => (g === undefined ? 0 : (g.user + g.system) * 1000);
const splitCell = (g: GroupWindow | undefined) =>
  g === undefined ? '–' : `${num(g.user * 1000)} / ${num(g.system * 1000)}`;
const at = (value: number | undefined) => (value === undefined ? '–' : ms(value));
/** The machine's busy time over the window as a share of all its cores (1 = every core all the time). */
const busyShare = (w: DeliveryWindow) => w.machine.busy / ((w.ms / 1000) * availableParallelism());

/** When the servers and the generators worked, up to the last receipt (the window's ticks after it are not delivery). */
function activities(row: Profiled): { server: Activity; generators: Activity } | undefined {
  const { window: w, result: r } = row;
  if (w === undefined || r.durationMs <= 0) return undefined;
  const until = r.durationMs + w.tickMs;
  return { server: activity(w.groups['server'], until), generators: activity(w.groups['generators'], until) };
}

/** CPU ms in the window by who spent it; `other` is the machine's busy time outside the groups. */
function consumers(w: DeliveryWindow) {
  const group = (key: string) => cpuMs(w.groups[key]);
  const server = w.groups['server'];
  const known = ['server', 'generators', 'postgres', 'bench'].reduce((total, key) => total + group(key), 0);
  return {
    serverUser: (server?.user ?? 0) * 1000,
    serverKernel: (server?.system ?? 0) * 1000,
    generators: group('generators'),
    postgres: group('postgres'),
    bench: group('bench'),
    other: Math.max(0, w.machine.busy * 1000 - known),
  };
}

// What each consumer is, for the sentence that names the largest.
const CONSUMERS: Readonly<Record<keyof ReturnType<typeof consumers>, string>> = {
  serverUser: "the servers in user mode (ours and Bun's: the fan-out and framing)",
  serverKernel: "the servers in the kernel (a send() per socket; over loopback it also runs the receiving side's TCP)",
  generators: 'the co-located clients (the generator processes reading their sockets)',
  postgres: 'PostgreSQL',
  bench: 'the orchestrator',
  other: 'the rest of the machine (kernel threads and other processes)',
};

/** The bound in plain words, from the window's numbers. */
export function boundText(row: Profiled): string {
  const { window: w, result: r } = row;
  const busyTimes = activities(row);
  if (w === undefined || busyTimes === undefined) return `- ${row.name}: no delivery window was measured.`;
  const cores = availableParallelism();
  const busy = busyShare(w);
  const spent = consumers(w);
  const perClient = (cpu: number) => `${num((cpu * 1000) / Math.max(1, r.connected), 1)} µs per client`;
  const ranked = (Object.entries(spent) as [keyof typeof spent, number][]).sort((a, b) => b[1] - a[1]);
  const named = ([key, cpu]: [keyof typeof spent, number]) => `${CONSUMERS[key]}, ${num(cpu)} ms`;
  const [top, next] = ranked;
  // On a shared machine the largest may be someone else's: then name ours too.
  const largest =
    top === undefined
      ? '–'
      : top[0] === 'other' && next !== undefined
        ? `${named(top)}, and of the benchmark's own processes ${named(next)}`
        : named(top);
  const kernelShare = ((w.machine.system + w.machine.interrupts) / Math.max(w.machine.busy, 1e-9)) * 100;
  const done = busyTimes.server.lastDoneMs;
  const last = r.durationMs;
  const parts = [
    `${row.name}: the last client received ${ms(last)} ms after the NOTIFY; the first server process woke at ${at(busyTimes.server.firstBusyMs)} ms, the first to finish stopped at ${at(busyTimes.server.firstDoneMs)} ms and the last at ${at(done)} ms.`,
    `CPU in the window: servers ${num(spent.serverUser)} ms user + ${num(spent.serverKernel)} ms kernel (${perClient(spent.serverUser + spent.serverKernel)}), generators ${num(spent.generators)} ms (${perClient(spent.generators)}), PostgreSQL ${num(spent.postgres)} ms, other ${num(spent.other)} ms; the kernel's share of the machine's busy time (system, irq, softirq) is ${num(kernelShare)} %.`,
  ];
  if (done !== undefined && done < last * SERVERS_DONE_SHARE) {
    parts.push(
      `Bound: the co-located clients. The servers had sent everything ${ms(last - done)} ms before the last receipt.`,
    );
  } else if (busy >= SATURATED) {
    parts.push(
      `Bound: the machine's ${cores} cores, ${num(busy * 100)} % busy: the servers send until the last receipt because they share the cores with the clients reading, so the time is everyone's CPU ÷ ${cores}; the largest part is ${largest}.`,
    );
  } else {
    parts.push(
      `Bound: not the CPU alone: the servers send until the last receipt, yet the machine was ${num(busy * 100)} % busy over its ${cores} cores, so about ${num((1 - busy) * 100)} % of the window went to waiting (wake-ups, scheduling) rather than work.`,
    );
  }
  return `- ${parts.join(' ')}`;
}

function profileRow(row: Profiled): string[] {
  const { window: w } = row;
  const busyTimes = activities(row);
  return [
    row.name,
    at(w?.ms),
    splitCell(w?.groups['server']),
    splitCell(w?.groups['generators']),
    w === undefined ? '–' : num(cpuMs(w.groups['postgres'])),
    w === undefined ? '–' : num(cpuMs(w.groups['bench'])),
    w === undefined ? '–' : num(consumers(w).other),
    w === undefined ? '–' : `${num(busyShare(w) * 100)} %`,
    w === undefined ? '–' : num(w.machine.interrupts * 1000),
    at(busyTimes?.server.firstBusyMs),
    at(busyTimes?.server.lastDoneMs),
    at(busyTimes?.generators.lastDoneMs),
    ms(row.result.durationMs),
  ];
}

/** The profile as a report section: a table row and a bound sentence per row. */
export function profileSection(rows: readonly Profiled[]): Section {
  return {
    title: 'Scale: where the time from the NOTIFY to the last receipt goes',
    headers: [
      'row',
      'window ms',
      'server CPU ms user / sys',
      'generators CPU ms user / sys',
      'PostgreSQL CPU ms',
      'bench CPU ms',
      'other CPU ms',
      'machine busy',
      'interrupts ms',
      'first server busy ms',
      'last server done ms',
      'generators done ms',
      'last receipt ms',
    ],
    rows: rows.map(profileRow),
    notes: [
      [
        'The window runs from just before the NOTIFY to the moment every client had it (as the generators report it over IPC); times are ms after the NOTIFY.',
        `CPU from /proc/<pid>/stat at the window's two ends (10 ms ticks; reaped children included); machine busy = the machine's busy time (/proc/stat) ÷ (window × ${availableParallelism()} cores); other = the machine's busy time outside the server, generator, PostgreSQL and orchestrator (bench) processes: kernel threads and anything else running; interrupts = the machine's irq + softirq time (loopback packets being received), which tick accounting also charges to the process it interrupted.`,
        'Busy and done times: the main thread (Bun\'s event loop) of every server and generator process is read every 10 ms (/proc/<pid>/sched); "last server done" is the last tick up to the last receipt in which any server process\'s main thread ran, "generators done" the same for the generators.',
        'The bound, row by row:',
      ].join(' '),
      ...rows.map(boundText),
    ],
  };
}
