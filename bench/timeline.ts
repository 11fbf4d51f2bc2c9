/**
 * The delivery window of one NOTIFY under a magnifier: every few ms it reads how long the main thread
 * (Bun's event loop) of each sampled process has run, so a report can say when the first server
 * process started sending, when the last one stopped, and when the clients stopped reading; at the
 * window's two ends it reads each group's user and kernel CPU and the machine's.
 */
import { type CpuSplit, cpuSplit, type MachineTimes, machineTimes, mainThreadSeconds } from './procstat.ts';
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
}

// A main thread that ran less than this in a tick counts as idle there (a timer, a scrape).
const BUSY_SECONDS = 0.0002;

interface Sampled {
  readonly group: string;
  readonly pid: number;
  last: number;
  readonly busy: number[];
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
  const processes: Sampled[] = sampled.flatMap((group) =>
    (groups[group] ?? []).map((pid) => ({
      group,
      pid,
      last: mainThreadSeconds(pid),
      busy: [],
    })),
  );
  const sample = () => {
    const at = clock() - startMs;
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
