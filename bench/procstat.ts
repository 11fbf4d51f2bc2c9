/**
 * Reads Linux /proc for the benchmark: CPU time (utime + stime, plus the reaped children's cutime +
 * cstime so a backend that exits mid-case is still counted), resident memory, open files, process
 * and process trees.
 */
import { readdirSync, readFileSync } from 'node:fs';

// proc(5): times in /proc/<pid>/stat are in clock ticks; USER_HZ is 100 on every Linux ABI in use.
const TICKS_PER_SECOND = 100;

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  const text = read(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds of a process in user and in kernel mode (its threads, and reaped children). */
export interface CpuSplit {
  readonly user: number;
  readonly system: number;
}

/** {@link CpuSplit} of a process; zeros for one that is gone. */
export function cpuSplit(pid: number): CpuSplit {
  const fields = statFields(pid);
  if (fields === undefined) return { user: 0, system: 0 };
  // proc(5) numbers from 1 with pid and comm first: utime, stime, cutime, cstime are fields 14-17,
  // so indexes 11-14 here.
  const ticks = (i: number) => Number(fields[i] ?? 0) / TICKS_PER_SECOND;
  return { user: ticks(11) + ticks(13), system: ticks(12) + ticks(14) };
}

/** CPU seconds of a process (its threads, and its children that have exited and been reaped). */
export function cpuSeconds(pid: number): number {
  const { user, system } = cpuSplit(pid);
  return user + system;
}

/**
 * CPU seconds the main thread of a process (Bun's event loop) has run, to the microsecond
 * (`se.sum_exec_runtime` of /proc/<pid>/sched, in ms); the tick-grained {@link cpuSeconds} of the
 * whole process where the kernel does not have that file (no CONFIG_SCHED_DEBUG).
 */
export function mainThreadSeconds(pid: number): number {
  const match = /^se\.sum_exec_runtime\s*:\s*([\d.]+)/m.exec(read(`/proc/${pid}/sched`) ?? '');
  return match === null ? cpuSeconds(pid) : Number(match[1]) / 1000;
}

/** Resident set size in kB (VmRSS), 0 for a process that is gone. */
export function rssKb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(read(`/proc/${pid}/status`) ?? '');
  return match === null ? 0 : Number(match[1]);
}

/** Open file descriptors of a process. */
export function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** The soft limit on open files of a process ("Max open files" in /proc/<pid>/limits). */
export function fileLimit(pid: number | 'self' = 'self'): number {
  const match = /^Max open files\s+(\d+)/m.exec(read(`/proc/${pid}/limits`) ?? '');
  return match === null ? 1024 : Number(match[1]);
}

/** A process as the whole machine's table lists it: its name (comm) and CPU seconds so far. */
export interface ProcessCpu {
  readonly name: string;
  readonly seconds: number;
}

/** Every process on the machine now, kernel threads included, by pid. */
export function allProcesses(): Map<number, ProcessCpu> {
  const table = new Map<number, ProcessCpu>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const text = read(`/proc/${entry}/stat`);
    if (text === undefined) continue;
    const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
    table.set(Number(entry), { name, seconds: ticks / TICKS_PER_SECOND });
  }
  return table;
}

function parents(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(Number(entry))?.[1] ?? 0);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  return children;
}

/** A process and all its descendants that are alive now. */
export function processTree(root: number): number[] {
  if (statFields(root) === undefined) return [];
  const children = parents();
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

/**
 * Sockets listening on a TCP port: one per process sharing it with SO_REUSEPORT. Asks `ss` (netlink,
 * filtered in the kernel); /proc/net/tcp lists every TIME_WAIT socket too and takes long to read
 * after a benchmark's worth of connections, so it is only the fallback.
 */
export function listeningSockets(port: number): number {
  const ss = Bun.spawnSync(['ss', '-Hltn', `sport = :${port}`], { stdout: 'pipe', stderr: 'ignore' });
  if (ss.success)
    return ss.stdout
      .toString()
      .split('\n')
      .filter((line) => line.trim() !== '').length;
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of (read(file) ?? '').split('\n')) {
      const fields = line.trim().split(/\s+/);
      // fields[1] is local_address "ADDR:PORT", fields[3] the state; 0A is LISTEN.
      if (fields[3] === '0A' && `${fields[1]} `.endsWith(hex)) count += 1;
    }
  }
  return count;
}

/** The parent of a process (e.g. the postmaster of a backend), if it is visible here. */
export function parentOf(pid: number): number | undefined {
  const ppid = Number(statFields(pid)?.[1]);
  return Number.isInteger(ppid) && ppid > 1 ? ppid : undefined;
}

/** CPU used by a set of processes between a meter's start and a reading. */
export interface CpuReading {
  readonly seconds: number;
  /** As a percentage of one core over the elapsed wall time (200 % = both cores of this machine). */
  readonly percent: number;
}

/** Starts measuring; `list` is called now and at each reading (backends come and go). */
export function cpuMeter(list: () => readonly number[]): () => CpuReading {
  const total = () => list().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const startCpu = total();
  const startWall = performance.now();
  return () => {
    const seconds = total() - startCpu;
    const wall = (performance.now() - startWall) / 1000;
    return { seconds, percent: wall > 0 ? (seconds / wall) * 100 : 0 };
  };
}

/** CPU seconds the whole machine (all CPUs) has spent busy, and the kernel's part of it. */
export interface MachineTimes {
  readonly busy: number;
  /** In the kernel on behalf of processes (system). */
  readonly system: number;
  /** Handling interrupts and softirqs (irq + softirq), such as loopback packets being received. */
  readonly interrupts: number;
}

/** {@link MachineTimes} now, from the `cpu` line of /proc/stat. */
export function machineTimes(): MachineTimes {
  const fields = (read('/proc/stat') ?? '').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const seconds = (indexes: readonly number[]) =>
    indexes.reduce((sum, i) => sum + (fields[i] ?? 0), 0) / TICKS_PER_SECOND;
  // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
  return { busy: seconds([0, 1, 2, 5, 6, 7]), system: seconds([2]), interrupts: seconds([5, 6]) };
}

/** CPU seconds the whole machine spent busy (all CPUs, from the `cpu` line of /proc/stat). */
export const machineBusySeconds = (): number => machineTimes().busy;

/** Summed RSS (kB) over a process tree, e.g. a server and its workers. */
export const treeRssKb = (root: number): number => processTree(root).reduce((sum, pid) => sum + rssKb(pid), 0);
