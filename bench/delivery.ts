/**
 * The delivery window of one NOTIFY under a magnifier (the scale scenario's second section): which main
 * threads ran every 10 ms, and CPU per group at both ends; from those, who spent the CPU until the last
 * receipt, when the servers sent, and what bounds that time, in plain words.
 */
import { availableParallelism } from 'node:os';
import { allProcesses, type CpuSplit, cpuSplit, machineTimes, mainThreadSeconds } from './procstat.ts';
import { type Column, ms, num, section } from './report.ts';
import type { TrialResult } from './trial.ts';

/** The processes of a window, listed once before it: reading the process tables during it would disturb it. */
export type Groups = Readonly<Record<'server' | 'generators' | 'postgres' | 'bench', readonly number[]>>;

/** The window: its groups' user and kernel CPU seconds, the machine's, and the others' by name. */
export type DeliveryWindow = ReturnType<ReturnType<typeof watchWindow>['stop']>;

const TICK_MS = 10;
// A main thread that ran less than this in a tick counts as idle there (a timer, a scrape).
const BUSY_SECONDS = 0.0002;
const SETTLE_SLICE_MS = 500;
// Servers done this early in the window leave the rest of it to the clients.
const SERVERS_DONE_SHARE = 0.75;
const SATURATED = 0.9;

/** Starts measuring the user and kernel CPU of `pids`; the reading is the seconds since. */
function cpuOf(pids: readonly number[]): () => CpuSplit {
  const add = (a: CpuSplit, b: CpuSplit) => ({ user: a.user + b.user, system: a.system + b.system });
  const split = () => pids.map(cpuSplit).reduce(add, { user: 0, system: 0 });
  const start = split();
  return () => {
    const now = split();
    return { user: now.user - start.user, system: now.system - start.system };
  };
}

/** Starts the window; each tick notes the machine's busy seconds and which server and client main threads ran. */
export function watchWindow(groups: Groups) {
  const started = performance.now();
  const cpu = {
    server: cpuOf(groups.server),
    generators: cpuOf(groups.generators),
    postgres: cpuOf(groups.postgres),
    bench: cpuOf(groups.bench),
  };
  const startMachine = machineTimes();
  // The whole table at the two ends only: reading it costs a few ms, too much for every tick.
  const startTable = new Map(allProcesses().map((p) => [p.pid, p.user + p.system]));
  const sampled = (pids: readonly number[]) =>
    pids.map((pid) => ({ pid, last: mainThreadSeconds(pid), busy: [] as number[] }));
  const threads = { server: sampled(groups.server), generators: sampled(groups.generators) };
  const busyTicks: [number, number][] = [[0, startMachine.busy]];
  const sample = () => {
    const at = performance.now() - started;
    busyTicks.push([at, machineTimes().busy]);
    for (const p of [...threads.server, ...threads.generators]) {
      const now = mainThreadSeconds(p.pid);
      if (now - p.last >= BUSY_SECONDS) p.busy.push(at);
      p.last = now;
    }
  };
  const timer = setInterval(sample, TICK_MS);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const end = machineTimes();
      const mine = new Set(Object.values(groups).flat());
      // CPU seconds of the processes outside the groups, summed by name (ksoftirqd/0, …), most first.
      const byName = new Map<string, number>();
      for (const { pid, name, user, system } of allProcesses()) {
        const spent = user + system - (startTable.get(pid) ?? 0);
        if (!mine.has(pid) && spent > 0) byName.set(name, (byName.get(name) ?? 0) + spent);
      }
      const others = [...byName].map(([name, seconds]) => ({ name, seconds })).sort((a, b) => b.seconds - a.seconds);
      return {
        ms: performance.now() - started,
        server: { ...cpu.server(), busyMs: threads.server.map((p) => p.busy) },
        generators: { ...cpu.generators(), busyMs: threads.generators.map((p) => p.busy) },
        postgres: cpu.postgres(),
        bench: cpu.bench(),
        machine: {
          busy: end.busy - startMachine.busy,
          system: end.system - startMachine.system,
          interrupts: end.interrupts - startMachine.interrupts,
        },
        busyTicks,
        othersSeconds: others.reduce((total, p) => total + p.seconds, 0),
        others: others.slice(0, 5),
      };
    },
  };
}

/** Waits until the machine's cores were under `below` busy over half a second, or `maxMs` passed. */
export async function settle(below: number, maxMs: number) {
  const started = performance.now();
  for (;;) {
    const before = machineTimes().busy;
    await Bun.sleep(SETTLE_SLICE_MS);
    const busy = (machineTimes().busy - before) / ((SETTLE_SLICE_MS / 1000) * availableParallelism());
    const waitedMs = performance.now() - started;
    if (busy < below || waitedMs >= maxMs) return { waitedMs, busy };
  }
}

/** How a wait for a quiet machine ended. */
export type Settled = Awaited<ReturnType<typeof settle>>;

/** One row of the profile. */
export type Profiled = {
  readonly name: string;
  readonly result: TrialResult;
  readonly window: DeliveryWindow | undefined;
};

/** When a sampled group worked until the last receipt: first busy tick, last of the first and last to finish. */
function activity(row: Profiled, group: 'server' | 'generators') {
  const untilMs = row.result.durationMs + TICK_MS;
  const ticks = (row.window?.[group].busyMs ?? [])
    .map((busy) => busy.filter((at) => at <= untilMs))
    .filter((busy) => busy.length > 0);
  const none = ticks.length === 0 || row.result.durationMs <= 0;
  const ends = ticks.map((busy) => busy.at(-1) ?? 0);
  return {
    firstBusyMs: none ? undefined : Math.min(...ticks.map((busy) => busy[0] ?? 0)),
    firstDoneMs: none ? undefined : Math.min(...ends),
    lastDoneMs: none ? undefined : Math.max(...ends),
  };
}

/** The machine's busy share of its cores (0..1) between two moments, widened to the ticks around them. */
function busyBetween(w: DeliveryWindow, fromMs: number, toMs: number): number {
  const before = w.busyTicks.findLast(([at]) => at <= fromMs) ?? w.busyTicks[0];
  const after = w.busyTicks.find(([at]) => at >= toMs) ?? w.busyTicks.at(-1);
  if (before === undefined || after === undefined || after[0] <= before[0]) return 0;
  return (after[1] - before[1]) / (((after[0] - before[0]) / 1000) * availableParallelism());
}

/** The machine's busy share while the servers sent: before the first wakes, only PostgreSQL's delivery runs. */
const sendingBusy = (row: Profiled, w: DeliveryWindow) =>
  busyBetween(w, activity(row, 'server').firstBusyMs ?? 0, row.result.durationMs);

const cpuMs = (g: CpuSplit) => (g.user + g.system) * 1000;

/** CPU ms in the window by who spent it. */
const consumers = (w: DeliveryWindow): [string, number][] => [
  ["ours and Bun's (the servers in user mode: fan-out and framing)", w.server.user * 1000],
  [
    "the kernel's (the servers' system time: a send() per socket, which over loopback also runs the receiving side's TCP)",
    w.server.system * 1000,
  ],
  ["the co-located clients' (the generator processes reading their sockets)", cpuMs(w.generators)],
  ["PostgreSQL's", cpuMs(w.postgres)],
  ["the orchestrator's", cpuMs(w.bench)],
  ["the rest of the machine's (kernel threads and other processes)", w.othersSeconds * 1000],
];

/** The bound in plain words, from the window's numbers. */
function boundText(row: Profiled): string {
  const { window: w, result: r } = row;
  if (w === undefined || r.durationMs <= 0) return `- ${row.name}: no delivery window was measured.`;
  const server = activity(row, 'server');
  const cores = availableParallelism();
  const last = r.durationMs;
  const busy = sendingBusy(row, w);
  const perClient = (cpu: number) => `${num((cpu * 1000) / Math.max(1, r.connected), 1)} µs per client`;
  const serverUser = w.server.user * 1000;
  const serverKernel = w.server.system * 1000;
  const generators = cpuMs(w.generators);
  const other = w.othersSeconds * 1000;
  // Kernel threads such as ksoftirqd (network receive work deferred from the senders), or other jobs.
  const othersNamed = w.others
    .slice(0, 3)
    .map((p) => `${p.name} ${num(p.seconds * 1000)} ms`)
    .join(', ');
  // Ours and Bun's (the first) is named even at 0 ms: that it is negligible is part of the answer.
  const ranked = consumers(w)
    .filter(([, cpu], i) => cpu > 0 || i === 0)
    .sort((a, b) => b[1] - a[1])
    .map(([who, cpu]) => `${who} ${num(cpu)} ms`)
    .join(', ');
  const kernelShare = ((w.machine.system + w.machine.interrupts) / Math.max(w.machine.busy, 1e-9)) * 100;
  const done = server.lastDoneMs;
  const bound =
    done !== undefined && done < last * SERVERS_DONE_SHARE
      ? `Bound: the co-located clients. The servers had sent everything ${ms(last - done)} ms before the last receipt.`
      : busy >= SATURATED
        ? `Bound: the machine's ${cores} cores, ${num(busy * 100)} % busy while the servers sent: the servers send until the last receipt because they share the cores with the clients reading, so the time is everyone's CPU ÷ ${cores}. Whose CPU, most first: ${ranked}.`
        : `Bound: not the CPU alone: the servers send until the last receipt, yet the machine was ${num(busy * 100)} % busy over its ${cores} cores meanwhile, so about ${num((1 - busy) * 100)} % of that time went to waiting (wake-ups, scheduling) rather than work.`;
  return [
    `- ${row.name}: the last client received ${ms(last)} ms after the NOTIFY; the first server process woke at ${ms(server.firstBusyMs)} ms, the first to finish stopped at ${ms(server.firstDoneMs)} ms and the last at ${ms(server.lastDoneMs)} ms.`,
    `CPU in the window: servers ${num(serverUser)} ms user + ${num(serverKernel)} ms kernel (${perClient(serverUser + serverKernel)}), generators ${num(generators)} ms (${perClient(generators)}), PostgreSQL ${num(cpuMs(w.postgres))} ms, other ${num(other)} ms${othersNamed === '' ? '' : ` (the most: ${othersNamed})`}; the kernel's share of the machine's busy time (system, irq, softirq) is ${num(kernelShare)} %.`,
    bound,
  ].join(' ');
}

/** A cell of the window, '–' without one. */
const of = (cell: (w: DeliveryWindow, row: Profiled) => string) => (row: Profiled) =>
  row.window === undefined ? '–' : cell(row.window, row);
const userSys = (g: CpuSplit) => `${num(g.user * 1000)} / ${num(g.system * 1000)}`;

const COLUMNS: readonly Column<Profiled>[] = [
  ['row', (row) => row.name],
  ['window ms', of((w) => ms(w.ms))],
  ['server CPU ms user / sys', of((w) => userSys(w.server))],
  ['generators CPU ms user / sys', of((w) => userSys(w.generators))],
  ['PostgreSQL CPU ms', of((w) => num(cpuMs(w.postgres)))],
  ['bench CPU ms', of((w) => num(cpuMs(w.bench)))],
  ['other CPU ms', of((w) => num(w.othersSeconds * 1000))],
  [
    'machine busy while sending',
    of((w, row) => (row.result.durationMs > 0 ? `${num(sendingBusy(row, w) * 100)} %` : '–')),
  ],
  ['interrupts ms', of((w) => num(w.machine.interrupts * 1000))],
  ['first server busy ms', (row) => ms(activity(row, 'server').firstBusyMs)],
  ['last server done ms', (row) => ms(activity(row, 'server').lastDoneMs)],
  ['generators done ms', (row) => ms(activity(row, 'generators').lastDoneMs)],
  ['last receipt ms', (row) => ms(row.result.durationMs)],
];

/** The profile as a report section: a table row and a bound sentence per row. */
export function profileSection(rows: readonly Profiled[]) {
  return section('Scale: where the time from the NOTIFY to the last receipt goes', COLUMNS, rows, [
    `The window runs from just before the NOTIFY to the moment every client had it (as the generators report it over IPC); times are ms after the NOTIFY. CPU from /proc/<pid>/stat at the window's two ends (10 ms ticks; reaped children included); machine busy = the machine's busy time (/proc/stat, read every tick) from the first server's wake-up to the last receipt ÷ (that time × ${availableParallelism()} cores); other = every other process on the machine (/proc/<pid>/stat of each at both ends): kernel threads such as ksoftirqd, and anything else running; interrupts = the machine's irq + softirq time (loopback packets being received), which tick accounting also charges to the process it interrupted. Busy and done times: the main thread (Bun's event loop) of every server and generator process is read every 10 ms (/proc/<pid>/sched); "last server done" is the last tick up to the last receipt in which any server process's main thread ran, "generators done" the same for the generators. The bound, row by row:`,
    ...rows.map(boundText),
  ]);
}
