/**
 * `[server] workers = N` as a deployment unit (issue 14): real server processes sharing one port, real
 * sockets of both modes, and the operating system's view of which process serves which client. Black
 * box on purpose: processes, sockets, signals and HTTP only, so these hold whatever the processes say to
 * each other.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { connect } from './client.ts';
import { databaseUrl, metricIn, uniqueChannel, waitFor, within } from './harness.ts';
import { connectMux } from './mux.ts';
import { freshGet, type ServerProcess, spawnServer } from './process.ts';
import { acceptedConnections, alive, listeningProcesses } from './sockets.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const WORKERS = 3;
// src/main.ts SHUTDOWN_DEADLINE_MS: past it the primary gives up and exits 1, so this is what a deploy may wait.
const SHUTDOWN_DEADLINE_MS = 4500;
// The kernel picks a process per connection: 1 in 3 here, so this many is never reached by chance.
const MAX_CONNECTIONS = 120;
const MODES = ['plain', 'multiplexed'] as const;

type Mode = (typeof MODES)[number];

/** A client of either mode, subscribed to one channel, with the process that accepted its connection. */
interface Served {
  readonly mode: Mode;
  readonly pid: number;
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The payload of the next notification. */
  next(): Promise<unknown>;
}

const toml = `[server]\nworkers = ${WORKERS}\n`;
const start = () => spawnServer({ toml, env: { DATABASE_URL: databaseUrl() } });

async function notify(channel: string, payload: string) {
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  await sql`SELECT pg_notify(${channel}, ${payload})`;
  await sql.end();
}

/** The processes accepting on the server's port, once `ready` holds of them. */
async function serving(server: ServerProcess, what: string, ready: (pids: readonly number[]) => boolean) {
  const port = Number(server.url.port);
  let pids: number[] = [];
  await waitFor(
    () => {
      pids = listeningProcesses(port, server.process.pid);
      return ready(pids);
    },
    20_000,
    what,
  );
  return pids;
}

const all = (server: ServerProcess) =>
  serving(server, `${WORKERS} processes to listen`, (pids) => pids.length === WORKERS);

/** Opens one client (subscribed to `channel`) and finds the process holding the server end of its socket. */
async function open(server: ServerProcess, mode: Mode, channel: string): Promise<Served> {
  const port = Number(server.url.port);
  const before = acceptedConnections(port, server.process.pid);
  const client =
    mode === 'plain'
      ? await connect(server.wsUrl(channel)).then((c) => ({ closed: c.closed, next: () => c.next() }))
      : await connectMux(server.url).then(async (c) => {
          await c.subscribe(channel);
          return { closed: c.closed, next: async () => (await c.next('message')).payload };
        });
  const added = [...acceptedConnections(port, server.process.pid)].filter(([peer]) => !before.has(peer));
  const [first] = added;
  if (added.length !== 1 || first === undefined)
    throw new Error(
      `expected the server's processes to hold one new connection on port ${port}, found ${added.length}`,
    );
  return { ...client, mode, pid: first[1] };
}

/** Opens clients, plain and multiplexed in turn, until `enough` holds of them. */
async function openUntil(
  server: ServerProcess,
  channel: string,
  enough: (clients: readonly Served[]) => boolean,
  what: string,
): Promise<Served[]> {
  const clients: Served[] = [];
  while (!enough(clients)) {
    if (clients.length === MAX_CONNECTIONS) {
      const where = clients.map((c) => `${c.mode}@${c.pid}`).join(' ');
      throw new Error(`after ${MAX_CONNECTIONS} connections, still not ${what}: ${where}`);
    }
    clients.push(await open(server, MODES[clients.length % MODES.length] ?? 'plain', channel));
  }
  return clients;
}

/** Clients until each of `pids` serves at least one of each mode. */
const spread = (server: ServerProcess, channel: string, pids: readonly number[]) =>
  openUntil(
    server,
    channel,
    (clients) => pids.every((pid) => MODES.every((mode) => clients.some((c) => c.pid === pid && c.mode === mode))),
    'a client of each mode on every process',
  );

describe('workers', () => {
  test(`with workers = ${WORKERS}, SIGTERM to the primary closes every client of every process with 1001, then all exit, 0, within the deadline`, async () => {
    await using server = await start();
    const pids = await all(server);
    const channel = uniqueChannel();
    const clients = await spread(server, channel, pids);
    await notify(channel, 'before the signal');
    for (const client of clients) expect(await client.next()).toBe('before the signal');

    const signalled = performance.now();
    const exited = server.signal('SIGTERM');
    const closes = await within(Promise.all(clients.map((c) => c.closed)), SHUTDOWN_DEADLINE_MS, 'every close');
    expect(closes.map((close, i) => `${clients[i]?.mode}@${clients[i]?.pid}: ${close.code}`)).toEqual(
      clients.map((c) => `${c.mode}@${c.pid}: 1001`),
    );
    expect(await within(exited, SHUTDOWN_DEADLINE_MS, 'the primary to exit')).toBe(0);
    // When the primary exits its workers are gone too: tooling counts the service stopped then, and a
    // container's end would SIGKILL whatever is left, without 1001.
    expect(pids.filter(alive)).toEqual([]);
    expect(performance.now() - signalled).toBeLessThan(SHUTDOWN_DEADLINE_MS);
  });

  test('a worker killed with SIGKILL takes down only its own clients; they reconnect and are served, and a new worker takes its place', async () => {
    await using server = await start();
    const pids = await all(server);
    const channel = uniqueChannel();
    const clients = await spread(server, channel, pids);
    const victim = pids.find((pid) => pid !== server.process.pid) ?? 0;
    process.kill(victim, 'SIGKILL');

    const lost = clients.filter((c) => c.pid === victim);
    const kept = clients.filter((c) => c.pid !== victim);
    await within(Promise.all(lost.map((c) => c.closed)), 5000, "the killed worker's clients to see the close");
    await notify(channel, 'after the kill');
    for (const client of kept) expect(await client.next()).toBe('after the kill');
    // Reconnecting at once, as a client would: a survivor or the restarted worker serves it.
    const back: Served[] = [];
    for (const client of lost) back.push(await open(server, client.mode, channel));

    const now = await serving(
      server,
      'a new worker to listen in place of the killed one',
      (listening) => listening.length === WORKERS && listening.some((pid) => !pids.includes(pid)),
    );
    const restarted = now.filter((pid) => !pids.includes(pid));
    expect(restarted).toHaveLength(1);
    expect(server.lines.some((line) => line.includes('worker exited unexpectedly; restarting it'))).toBe(true);
    const metrics = await freshGet(server.url, '/metrics');
    expect(metricIn(metrics, 'pgws_worker_restarts_total', { reason: 'exited' })).toBe(1);
    const onRestarted = await openUntil(
      server,
      channel,
      (opened) => opened.some((c) => c.pid === restarted[0]),
      'a client on the restarted worker',
    );

    await notify(channel, 'after the restart');
    for (const client of [...kept, ...back, ...onRestarted]) expect(await client.next()).toBe('after the restart');
    expect(await within(server.signal('SIGTERM'), SHUTDOWN_DEADLINE_MS, 'exit')).toBe(0);
  });
});

/** A payload of the test's JSON notifications: a plain client gets its text, a multiplexed one the value. */
const payloadOf = (frame: unknown) => (typeof frame === 'string' ? JSON.parse(frame) : frame) as { n: number };

describe('a worker that stops reading', () => {
  test('is killed once the primary holds more than worker_backlog_bytes for it and is replaced, while the clients of the other process receive everything', async () => {
    // History pins the channel: every worker follows it, whether or not a client of its own holds it.
    const channel = uniqueChannel('backlog');
    const toml = `[server]\nworkers = 2\nworker_backlog_bytes = 65536\n[channels."${channel}"]\nhistory = 1\n`;
    await using server = await spawnServer({ toml, env: { DATABASE_URL: databaseUrl() } });
    const primary = server.process.pid;
    const pids = await serving(server, '2 processes to listen', (listening) => listening.length === 2);
    const stuck = pids.find((pid) => pid !== primary) ?? 0;
    const clients = await openUntil(
      server,
      channel,
      (c) => c.some((x) => x.pid === primary),
      'a client on the primary',
    );
    const onPrimary = clients.filter((client) => client.pid === primary);
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    process.kill(stuck, 'SIGSTOP');
    try {
      // 40 notifications of about 4 kB each: past 64 KiB after some 16.
      const sent = Array.from({ length: 40 }, (_, n) => ({ n, pad: 'x'.repeat(4000) }));
      for (const payload of sent) await sql`SELECT pg_notify(${channel}, ${JSON.stringify(payload)})`;
      for (const client of onPrimary) {
        const got: number[] = [];
        for (const _ of sent) got.push(payloadOf(await client.next()).n);
        expect(got).toEqual(sent.map((payload) => payload.n));
      }
      await waitFor(() => !alive(stuck), 10_000, 'the stopped worker to be killed');
      const logged = server.lines.filter((line) => line.includes('worker stopped reading its deliveries'));
      expect(logged).toHaveLength(1);
      const line = JSON.parse(logged[0] ?? '{}') as { level: string; worker: number; bytes: number };
      expect([line.level, line.worker, line.bytes > 65_536]).toEqual(['error', 1, true]);
      await serving(
        server,
        'a new worker in place of the killed one',
        (now) => now.length === 2 && !now.includes(stuck),
      );
      const metrics = await freshGet(server.url, '/metrics');
      expect(metricIn(metrics, 'pgws_worker_restarts_total', { reason: 'backlog' })).toBe(1);
      expect(metricIn(metrics, 'pgws_worker_restarts_total', { reason: 'exited' })).toBe(0);
    } finally {
      if (alive(stuck)) process.kill(stuck, 'SIGCONT');
      await sql.end();
    }
  });
});
