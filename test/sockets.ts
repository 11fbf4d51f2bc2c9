/**
 * Which process holds which TCP socket, read from Linux /proc: for process tests of `[server] workers`,
 * where the kernel (SO_REUSEPORT) and not the server decides which process accepts a connection, and
 * the server tells no client which process it is talking to.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** proc(5): the `st` column of /proc/net/tcp. */
const ESTABLISHED = '01';
const LISTEN = '0A';

interface TcpSocket {
  readonly localPort: number;
  readonly remotePort: number;
  readonly state: string;
  readonly inode: string;
}

const read = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

const port = (address: string | undefined) => Number.parseInt(address?.split(':').at(-1) ?? '', 16);

/** Every TCP socket in this network namespace, IPv4 and IPv6. */
function tcpSockets(): TcpSocket[] {
  return ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) =>
    read(file)
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields.length > 9)
      .map((fields) => ({
        localPort: port(fields[1]),
        remotePort: port(fields[2]),
        state: fields[3] ?? '',
        inode: fields[9] ?? '',
      })),
  );
}

/** The inodes of a process's open sockets (`socket:[123]` links in /proc/<pid>/fd). */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // The fd closed between the listing and the readlink.
    }
  }
  return inodes;
}

/** Whether a process runs: it exists and is not a zombie (exited, waiting to be reaped). */
export function alive(pid: number): boolean {
  const stat = read(`/proc/${pid}/stat`);
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== '' && state !== 'Z' && state !== 'X';
}

/** A process and its descendants that run now. */
export function processTree(root: number): number[] {
  const tree = alive(root) ? [root] : [];
  for (let i = 0; i < tree.length; i++) {
    const pid = tree[i] as number;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {}
    // A child belongs to the thread that spawned it, so every thread's list counts.
    const children = tasks.flatMap((task) => read(`/proc/${pid}/task/${task}/children`).trim().split(/\s+/));
    tree.push(
      ...children
        .filter((child) => child !== '')
        .map(Number)
        .filter(alive),
    );
  }
  return tree;
}

/** For each socket of `state` on local `port`, the process of `root`'s tree that holds it. */
function holders(localPort: number, root: number, state: string): Map<TcpSocket, number> {
  const sockets = tcpSockets().filter((s) => s.localPort === localPort && s.state === state);
  const byInode = new Map<string, number>();
  for (const pid of processTree(root)) for (const inode of socketInodes(pid)) byInode.set(inode, pid);
  const held = new Map<TcpSocket, number>();
  for (const socket of sockets) {
    const pid = byInode.get(socket.inode);
    if (pid !== undefined) held.set(socket, pid);
  }
  return held;
}

/** The processes of `root`'s tree listening on `port`: with SO_REUSEPORT, every process that accepts there. */
export function listeningProcesses(port: number, root: number): number[] {
  return [...new Set(holders(port, root, LISTEN).values())].sort((a, b) => a - b);
}

/**
 * The accepted connections on `port` held by `root`'s tree: the client's port (the far end) → the
 * process that holds the server end.
 */
export function acceptedConnections(port: number, root: number): Map<number, number> {
  return new Map([...holders(port, root, ESTABLISHED)].map(([socket, pid]) => [socket.remotePort, pid]));
}
