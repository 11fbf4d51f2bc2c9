/**
 * Idle clients and one NOTIFY each must receive: capacity at 10 to 10,000 clients, ours beside the bare
 * bridge, a fresh server per level so "empty" is empty; and fdlimit, ours with as many clients as its
 * open-file limit allows (less what the idle server holds and a margin, no more than its admission takes).
 */
import { fileLimitSockets } from '../src/http/admission.ts';
import { fileLimit, openFiles } from './procstat.ts';
import { type Column, check, mb, num, ratio, section, times } from './report.ts';
import * as s from './scenario.ts';
import { SCHEMA_CHANNEL, startBare, type Target } from './servers.ts';
import { runTrial, type TrialResult } from './trial.ts';

const KB_PER_CONNECTION_GOAL = 12;
// Room the fd-limit server keeps for what it may open while serving: a reconnecting query connection, a scrape.
const MARGIN = 32;
const QUICK_CAP = 2000;

/** One row: a level's trial, and ours beside the bare bridge's at that level. */
type Level = { readonly r: TrialResult; readonly bare?: TrialResult };

const kb = s.kbPerIdleConnection;

const IDLE: readonly Column<Level>[] = [
  ['clients', ({ r }) => num(r.clients)],
  ['connected', ({ r }) => `${num(r.connected)}/${num(r.clients)}`],
  ['connect s', ({ r }) => num(r.connectMs / 1000, 2)],
  ['connects/s', ({ r }) => num(r.connected / (r.connectMs / 1000))],
  ['received / expected', ({ r }) => s.delivered(r)],
  ['RSS empty MB', ({ r }) => mb(r.rssEmptyKb)],
  ['RSS idle MB', ({ r }) => mb(r.rssIdleKb)],
  ['KB / conn', ({ r }) => num(kb(r), 1)],
];

/** One NOTIFY to `clients` clients of a server that is stopped again right after. */
async function notifyAll(context: s.Context, started: Promise<Target>, clients: number, channel = SCHEMA_CHANNEL) {
  await using target = await started;
  const send = { kind: 'burst', count: 1 } as const;
  return await runTrial(context.rig, { label: target.label, target, channel, clients, size: 100, send });
}

const reachesAll = (name: string, r: TrialResult) =>
  check(
    `${name}: one NOTIFY reaches every client`,
    s.delivered(r),
    ratio(r.received, r.clients),
    { min: 1 },
    s.clean(r),
  );

/** Runs the capacity scenario: both servers, fresh per level, one NOTIFY per level. */
export async function capacity(context: s.Context): Promise<s.Outcome> {
  const { rig, say } = context;
  const levels: Level[] = [];
  for (const clients of context.quick ? [10, 100, 1000] : [10, 100, 1000, 10_000]) {
    say(`capacity: bare bridge, ${num(clients)} clients`);
    const bare = await notifyAll(context, startBare(rig.db.url), clients, 'bench_capacity');
    say(`capacity: ours, ${num(clients)} clients`);
    const r = await notifyAll(context, s.startOursFor(context), clients);
    levels.push({ r: bare }, { r, bare });
  }
  const columns: Column<Level>[] = [
    ['server', ({ r }) => r.label],
    ...IDLE,
    ['× bare KB', ({ r, bare }) => (bare === undefined ? '' : times(ratio(kb(r), kb(bare))))],
    ...s.LATENCY,
  ];
  const ours = levels.filter((level) => level.bare !== undefined);
  const top = ours.at(-1);
  const perConnection = kb(top?.r);
  const measured = `${num(perConnection, 1)} KB per idle connection at ${num(top?.r.connected)} clients (bare: ${num(kb(top?.bare), 1)} KB)`;
  const memoryGoal = `memory ≤ ${KB_PER_CONNECTION_GOAL} KB per idle connection above the empty process`;
  return {
    sections: [
      section('Capacity: idle clients, one NOTIFY', columns, levels, [
        `A fresh server process per row. KB / conn = (RSS with the clients connected and idle − RSS of the empty process) ÷ clients, shown from ${num(s.MEANINGFUL_CLIENTS)} clients up (below that, heap noise is larger than the clients' share). The memory target's ratio = KB ÷ ${KB_PER_CONNECTION_GOAL}.`,
        ...levels.flatMap(({ r }) => s.anomalies(r, `${r.label}, ${num(r.clients)} clients`)),
      ]),
    ],
    targets: [
      check(memoryGoal, measured, ratio(perConnection, KB_PER_CONNECTION_GOAL), { max: 1 }),
      ...ours.map(({ r }) => reachesAll(`capacity ${num(r.clients)} clients`, r)),
    ],
  };
}

/** Runs the fd-limit scenario on a fresh server of ours, its admission cap raised past the file limit. */
export async function fdlimit(context: s.Context): Promise<s.Outcome> {
  const { rig, say } = context;
  const started = s.startOursFor(context, { server: { max_connections: 1_000_000 } });
  const { pid } = await started;
  const limit = fileLimit(pid);
  const idleFds = openFiles(pid);
  // The server admits its file limit less FILE_RESERVE and refuses the rest with 503 file_limit.
  const room = Math.min(limit - idleFds - MARGIN, fileLimitSockets(limit));
  const clients = context.quick ? Math.min(room, QUICK_CAP) : room;
  say(`fd limit: ours, ${num(clients)} clients (limit ${num(limit)}, ${idleFds} fds in use idle)`);
  const r = await notifyAll(context, started, clients);
  const columns: Column<Level>[] = [
    ['server', ({ r }) => r.label],
    ['fd limit', () => num(limit)],
    ['fds idle', () => num(idleFds)],
    ...IDLE,
    ...s.LATENCY,
  ];
  const cap = context.quick ? ` --quick caps this at ${num(QUICK_CAP)} clients.` : '';
  return {
    sections: [
      section(
        'Clients up to the fd limit',
        columns,
        [{ r }],
        [
          `${num(rig.pool.pids.length)} generator processes, destinations 127.0.0.1..${rig.addresses}; [server] max_connections raised so the fd limit, not the admission cap, is what binds.${cap}`,
          ...s.anomalies(r, 'fd limit'),
        ],
      ),
    ],
    targets: [reachesAll(`fd-limit run (${num(clients)} clients)`, r)],
  };
}
