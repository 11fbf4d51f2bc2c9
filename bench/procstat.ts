/**
 * Linux /proc for the benchmark: CPU time (with reaped children's, so a backend that exits mid-case still
 * counts), resident memory, open files, process trees, the machine's busy time.
 */
import { readdirSync, readFileSync } from 'node:fs';

// proc(5): times in /proc/<pid>/stat are in clock ticks; USER_HZ is 100 on every Linux ABI in use.
const TICKS_PER_SECOND = 100;

const read = (path: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

/** A process as /proc/<pid>/stat has it: name (comm), parent, and CPU seconds in user and kernel mode. */
interface Stat {
  readonly pid: number;
  readonly name: string;
  readonly ppid: number;
  readonly user: number;
  readonly system: number;
}

function stat(pid: number): Stat | undefined {
  const text = read(`/proc/${pid}/stat`);
  if (text === '') return undefined;
  // The command name may hold spaces and parentheses; the fields after it are numbered from 3 (proc(5)):
  // ppid is field 4, utime, stime, cutime, cstime fields 14-17.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = (field: number) => Number(fields[field - 3] ?? 0) / TICKS_PER_SECOND;
  const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
  return { pid, name, ppid: Number(fields[1]), user: ticks(14) + ticks(16), system: ticks(15) + ticks(17) };
}

/** Every process on the machine now, kernel threads included. */
export const allProcesses = (): Stat[] =>
  readdirSync('/proc').flatMap((entry) => (/^\d+$/.test(entry) ? (stat(Number(entry)) ?? []) : []));

/** CPU seconds of a process in user and in kernel mode (its threads, and reaped children); zeros when gone. */
export type CpuSplit = Pick<Stat, 'user' | 'system'>;
export const cpuSplit = (pid: number): CpuSplit => stat(pid) ?? { user: 0, system: 0 };

const cpuSeconds = (pid: number) => {
  const { user, system } = cpuSplit(pid);
  return user + system;
};

/** CPU seconds a process's main thread (Bun's event loop) ran, to the µs (without sched_debug: the process's). */
export function mainThreadSeconds(pid: number): number {
  const match = /^se\.sum_exec_runtime\s*:\s*([\d.]+)/m.exec(read(`/proc/${pid}/sched`));
  return match === null ? cpuSeconds(pid) : Number(match[1]) / 1000;
}

/** Resident set size in kB (VmRSS), 0 for a process that is gone. */
export const rssKb = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(read(`/proc/${pid}/status`))?.[1] ?? 0);

/** Open file descriptors of a process. */
export function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** The soft limit on open files of a process ("Max open files" in /proc/<pid>/limits). */
export const fileLimit = (pid: number | 'self' = 'self'): number =>
  Number(/^Max open files\s+(\d+)/m.exec(read(`/proc/${pid}/limits`))?.[1] ?? 1024);

/** A process and all its descendants that are alive now. */
export function processTree(root: number): number[] {
  if (stat(root) === undefined) return [];
  const all = allProcesses();
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...all.filter((p) => p.ppid === tree[i]).map((p) => p.pid));
  return tree;
}

/** Summed RSS (kB) over a process tree, e.g. a server and its workers. */
export const treeRssKb = (root: number): number => processTree(root).reduce((sum, pid) => sum + rssKb(pid), 0);

/** The parent of a process (e.g. the postmaster of a backend), if it is visible here. */
export function parentOf(pid: number): number | undefined {
  const ppid = stat(pid)?.ppid ?? 0;
  return ppid > 1 ? ppid : undefined;
}

/** Sockets listening on a TCP port (one per SO_REUSEPORT process); `ss`, as /proc/net/tcp lists every TIME_WAIT too. */
export function listeningSockets(port: number): number {
  const ss = Bun.spawnSync(['ss', '-Hltn', `sport = :${port}`], { stdout: 'pipe', stderr: 'pipe' });
  if (!ss.success) throw new Error(`ss failed: ${ss.stderr.toString().trim()}`);
  return ss.stdout
    .toString()
    .split('\n')
    .filter((line) => line.trim() !== '').length;
}

/**
 * Starts measuring the CPU of the processes `list` names (called at each reading: backends come and go);
 * a reading is the seconds since, and their % of one core (200 % = two cores).
 */
export function cpuMeter(list: () => readonly number[]) {
  const total = () => list().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const startCpu = total();
  const startWall = performance.now();
  return () => {
    const seconds = total() - startCpu;
    const wall = (performance.now() - startWall) / 1000;
    return { seconds, percent: wall > 0 ? (seconds / wall) * 100 : 0 };
  };
}

/** CPU seconds the machine (all CPUs) spent busy, of that in the kernel (system), and on irq and softirq. */
export function machineTimes() {
  const fields = read('/proc/stat').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const seconds = (indexes: readonly number[]) =>
    indexes.reduce((sum, i) => sum + (fields[i] ?? 0), 0) / TICKS_PER_SECOND;
  // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
  return { busy: seconds([0, 1, 2, 5, 6, 7]), system: seconds([2]), interrupts: seconds([5, 6]) };
}
