/**
 * The scale scenario's profile of the delivery window (bench/timeline.ts measures it): who spent the
 * CPU between the NOTIFY and the last receipt, when the servers started and stopped sending, and, from
 * those numbers, what bounds that time, in plain words: the co-located clients still reading after the
 * servers had sent everything, the machine's cores shared by the servers' sending (ours and Bun's work
 * in user mode, the kernel's in system mode) and the clients' reading, or waiting.
 */
import { availableParallelism } from 'node:os';
import { ms, num, type Section } from './stats.ts';
import { type Activity, activity, busyBetween, type DeliveryWindow, type GroupWindow } from './timeline.ts';
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

/** When the servers and the generators worked, up to the last receipt (the window's ticks after it are not delivery). */
function activities(row: Profiled): { server: Activity; generators: Activity } | undefined {
  const { window: w, result: r } = row;
  if (w === undefined || r.durationMs <= 0) return undefined;
  const until = r.durationMs + w.tickMs;
  return { server: activity(w.groups['server'], until), generators: activity(w.groups['generators'], until) };
}

/** CPU ms in the window by who spent it; `other` is every process outside the groups. */
function consumers(w: DeliveryWindow) {
  const group = (key: string) => cpuMs(w.groups[key]);
  const server = w.groups['server'];
  return {
    serverUser: (server?.user ?? 0) * 1000,
    serverKernel: (server?.system ?? 0) * 1000,
    generators: group('generators'),
    postgres: group('postgres'),
    bench: group('bench'),
    other: w.othersSeconds * 1000,
  };
}

// Whose each consumer's time is, in the issue's words (ours, Bun's, the kernel's, the clients').
const CONSUMERS: Readonly<Record<keyof ReturnType<typeof consumers>, string>> = {
  serverUser: "ours and Bun's (the servers in user mode: fan-out and framing)",
  serverKernel:
    "the kernel's (the servers' system time: a send() per socket, which over loopback also runs the receiving side's TCP)",
  generators: "the co-located clients' (the generator processes reading their sockets)",
  postgres: "PostgreSQL's",
  bench: "the orchestrator's",
  other: "the rest of the machine's (kernel threads and other processes)",
};

/** The bound in plain words, from the window's numbers. */
export function boundText(row: Profiled): string {
  const { window: w, result: r } = row;
  const busyTimes = activities(row);
  if (w === undefined || busyTimes === undefined) return `- ${row.name}: no delivery window was measured.`;
  const cores = availableParallelism();
  const done = busyTimes.server.lastDoneMs;
  const last = r.durationMs;
  // While the servers were sending: before the first wakes, only PostgreSQL's delivery runs.
  const busy = busyBetween(w, busyTimes.server.firstBusyMs ?? 0, last);
  const spent = consumers(w);
  const perClient = (cpu: number) => `${num((cpu * 1000) / Math.max(1, r.connected), 1)} µs per client`;
  // Kernel threads such as ksoftirqd (network receive work deferred from the senders), or other jobs.
  const othersNamed = w.others
    .slice(0, 3)
    .map((p) => `${p.name} ${num(p.seconds * 1000)} ms`)
    .join(', ');
  // Ours and Bun's is named even at 0 ms: that it is negligible is part of the answer.
  const ranked = (Object.entries(spent) as [keyof typeof spent, number][])
    .filter(([key, cpu]) => cpu > 0 || key === 'serverUser')
    .sort((a, b) => b[1] - a[1])
    .map(([key, cpu]) => `${CONSUMERS[key]} ${num(cpu)} ms`)
    .join(', ');
  const kernelShare = ((w.machine.system + w.machine.interrupts) / Math.max(w.machine.busy, 1e-9)) * 100;
  const parts = [
    `${row.name}: the last client received ${ms(last)} ms after the NOTIFY; the first server process woke at ${at(busyTimes.server.firstBusyMs)} ms, the first to finish stopped at ${at(busyTimes.server.firstDoneMs)} ms and the last at ${at(done)} ms.`,
    `CPU in the window: servers ${num(spent.serverUser)} ms user + ${num(spent.serverKernel)} ms kernel (${perClient(spent.serverUser + spent.serverKernel)}), generators ${num(spent.generators)} ms (${perClient(spent.generators)}), PostgreSQL ${num(spent.postgres)} ms, other ${num(spent.other)} ms${othersNamed === '' ? '' : ` (the most: ${othersNamed})`}; the kernel's share of the machine's busy time (system, irq, softirq) is ${num(kernelShare)} %.`,
  ];
  if (done !== undefined && done < last * SERVERS_DONE_SHARE) {
    parts.push(
      `Bound: the co-located clients. The servers had sent everything ${ms(last - done)} ms before the last receipt.`,
    );
  } else if (busy >= SATURATED) {
    parts.push(
      `Bound: the machine's ${cores} cores, ${num(busy * 100)} % busy while the servers sent: the servers send until the last receipt because they share the cores with the clients reading, so the time is everyone's CPU ÷ ${cores}. Whose CPU, most first: ${ranked}.`,
    );
  } else {
    parts.push(
      `Bound: not the CPU alone: the servers send until the last receipt, yet the machine was ${num(busy * 100)} % busy over its ${cores} cores meanwhile, so about ${num((1 - busy) * 100)} % of that time went to waiting (wake-ups, scheduling) rather than work.`,
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
    w === undefined || busyTimes === undefined
      ? '–'
      : `${num(busyBetween(w, busyTimes.server.firstBusyMs ?? 0, row.result.durationMs) * 100)} %`,
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
      'machine busy while sending',
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
        `CPU from /proc/<pid>/stat at the window's two ends (10 ms ticks; reaped children included); machine busy = the machine's busy time (/proc/stat, read every tick) from the first server's wake-up to the last receipt ÷ (that time × ${availableParallelism()} cores); other = every other process on the machine (/proc/<pid>/stat of each at both ends): kernel threads such as ksoftirqd, and anything else running; interrupts = the machine's irq + softirq time (loopback packets being received), which tick accounting also charges to the process it interrupted.`,
        'Busy and done times: the main thread (Bun\'s event loop) of every server and generator process is read every 10 ms (/proc/<pid>/sched); "last server done" is the last tick up to the last receipt in which any server process\'s main thread ran, "generators done" the same for the generators.',
        'The bound, row by row:',
      ].join(' '),
      ...rows.map(boundText),
    ],
  };
}
