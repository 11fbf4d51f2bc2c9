/**
 * The delivery window of one NOTIFY under a magnifier: every few ms it reads how long the main thread
 * (Bun's event loop) of each sampled process has run, so a report can say when the first server
 * process started sending, when the last one stopped, and when the clients stopped reading; at the
 * window's two ends it reads each group's user and kernel CPU, the machine's, and every other
 * process's, so the rest of the machine's share has names (ksoftirqd, another tenant's job).
 */
import { availableParallelism } from 'node:os';
import {
  allProcesses,
  type CpuSplit,
  cpuSplit,
  type MachineTimes,
  machineTimes,
  mainThreadSeconds,
  type ProcessCpu,
} from './procstat.ts';
import { clock } from './protocol.ts';

/** Processes by group name (server, generators, PostgreSQL, …), listed once before the window. */
export type Groups = Readonly<Record<string, readonly number[]>>;

/** What one group did in the window. CPU in seconds. */
export interface GroupWindow extends CpuSplit {
  /** Sampled groups only: per process, the ticks (ms after the window's start) in which its main thread ran. */
  readonly busyMs: readonly (readonly number[])[];
}

/** When a sampled group worked, up to a moment: ms after the window's start, undefined if never. */
export interface Activity {
  /** The first tick in which any of its main threads ran. */
  readonly firstBusyMs: number | undefined;
  /** The last tick in which the first of them to finish ran, and the same for the last to finish. */
  readonly firstDoneMs: number | undefined;
  readonly lastDoneMs: number | undefined;
}

/** The window: from `watchWindow` to `stop`. */
export interface DeliveryWindow {
  /** `clock()` at the start, the same clock as the payloads' send stamps. */
  readonly startMs: number;
  readonly ms: number;
  /** How often main threads were sampled: the resolution of the busy times. */
  readonly tickMs: number;
  readonly groups: Readonly<Record<string, GroupWindow>>;
  /** The machine's CPU seconds over the window (all cores). */
  readonly machine: MachineTimes;
  /** The machine's busy seconds so far at each tick: [ms after the start, seconds]. */
  readonly busyTicks: readonly (readonly [number, number])[];
  /** CPU seconds of every process outside the groups (kernel threads included), and the largest by name. */
  readonly othersSeconds: number;
  readonly others: readonly ProcessCpu[];
}

// A main thread that ran less than this in a tick counts as idle there (a timer, a scrape).
const BUSY_SECONDS = 0.0002;
const OTHERS = 5;
const SETTLE_SLICE_MS = 500;

interface Sampled {
  readonly group: string;
  readonly pid: number;
  last: number;
  readonly busy: number[];
}

/** CPU seconds in the window of the processes outside `mine`, summed by name (ksoftirqd/0, …), most first. */
function othersBetween(
  before: ReadonlyMap<number, ProcessCpu>,
  after: ReadonlyMap<number, ProcessCpu>,
  mine: ReadonlySet<number>,
): ProcessCpu[] {
  const byName = new Map<string, number>();
  for (const [pid, { name, seconds }] of after) {
    if (mine.has(pid)) continue;
    const spent = seconds - (before.get(pid)?.seconds ?? 0);
    if (spent > 0) byName.set(name, (byName.get(name) ?? 0) + spent);
  }
  return [...byName].map(([name, seconds]) => ({ name, seconds })).sort((a, b) => b.seconds - a.seconds);
}

const split = (pids: readonly number[]): CpuSplit =>
  pids.map(cpuSplit).reduce((a, b) => ({ user: a.user + b.user, system: a.system + b.system }), { user: 0, system: 0 });

/**
 * Starts the window now. `sampled` names the groups whose main threads are read every `tickMs`
 * (each read is a /proc file per process, so sample only the groups whose timing matters).
 */
export function watchWindow(groups: Groups, sampled: readonly string[], tickMs = 10): { stop(): DeliveryWindow } {
  const startMs = clock();
  const startCpu = Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, split(pids)]));
  const startMachine = machineTimes();
  // The whole table at the two ends only: reading it costs a few ms, too much for every tick.
  const startTable = allProcesses();
  const processes: Sampled[] = sampled.flatMap((group) =>
    (groups[group] ?? []).map((pid) => ({
      group,
      pid,
      last: mainThreadSeconds(pid),
      busy: [],
    })),
  );
  const busyTicks: [number, number][] = [[0, startMachine.busy]];
  const sample = () => {
    const at = clock() - startMs;
    busyTicks.push([at, machineTimes().busy]);
    for (const p of processes) {
      const now = mainThreadSeconds(p.pid);
      if (now - p.last >= BUSY_SECONDS) p.busy.push(at);
      p.last = now;
    }
  };
  const timer = setInterval(sample, tickMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const ms = clock() - startMs;
      const endMachine = machineTimes();
      const mine = new Set(Object.values(groups).flat());
      const others = othersBetween(startTable, allProcesses(), mine);
      const window = Object.fromEntries(
        Object.entries(groups).map(([name, pids]): [string, GroupWindow] => {
          const end = split(pids);
          const begin = startCpu[name] ?? { user: 0, system: 0 };
          const busyMs = processes.filter((p) => p.group === name).map((p) => p.busy);
          return [name, { user: end.user - begin.user, system: end.system - begin.system, busyMs }];
        }),
      );
      return {
        startMs,
        ms,
        tickMs,
        groups: window,
        machine: {
          busy: endMachine.busy - startMachine.busy,
          system: endMachine.system - startMachine.system,
          interrupts: endMachine.interrupts - startMachine.interrupts,
        },
        busyTicks,
        othersSeconds: others.reduce((total, p) => total + p.seconds, 0),
        others: others.slice(0, OTHERS),
      };
    },
  };
}

/**
 * When a group worked, counting only ticks up to `untilMs` (such as the last receipt plus a tick:
 * what a server does after every client has the NOTIFY is not sending it).
 */
export function activity(group: GroupWindow | undefined, untilMs: number): Activity {
  const ticks = (group?.busyMs ?? []).map((busy) => busy.filter((at) => at <= untilMs)).filter((b) => b.length > 0);
  if (ticks.length === 0) return { firstBusyMs: undefined, firstDoneMs: undefined, lastDoneMs: undefined };
  return {
    firstBusyMs: Math.min(...ticks.map((busy) => busy[0]!)),
    firstDoneMs: Math.min(...ticks.map((busy) => busy.at(-1)!)),
    lastDoneMs: Math.max(...ticks.map((busy) => busy.at(-1)!)),
  };
}

/**
 * The machine's busy share of all its cores (0..1) between two moments of the window (ms after its
 * start), widened to the ticks around them.
 */
export function busyBetween(w: DeliveryWindow, fromMs: number, toMs: number): number {
  const before = w.busyTicks.findLast(([at]) => at <= fromMs) ?? w.busyTicks[0];
  const after = w.busyTicks.find(([at]) => at >= toMs) ?? w.busyTicks.at(-1);
  if (before === undefined || after === undefined || after[0] <= before[0]) return 0;
  return (after[1] - before[1]) / (((after[0] - before[0]) / 1000) * availableParallelism());
}

/** How a wait for a quiet machine ended: after how long, and how busy its cores were in the last slice. */
export interface Settled {
  readonly waitedMs: number;
  readonly busy: number;
}

/**
 * Waits until the machine's cores were less than `below` busy (0..1) over a half-second slice, or
 * `maxMs` passed: what connecting started (the kernel's own work, garbage collection) should not run
 * into the window.
 */
export async function settle(below: number, maxMs: number): Promise<Settled> {
  const started = performance.now();
  for (;;) {
    const before = machineTimes().busy;
    await Bun.sleep(SETTLE_SLICE_MS);
    const busy = (machineTimes().busy - before) / ((SETTLE_SLICE_MS / 1000) * availableParallelism());
    const waitedMs = performance.now() - started;
    if (busy < below || waitedMs >= maxMs) return { waitedMs, busy };
  }
}
