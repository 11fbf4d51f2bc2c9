/**
 * Scale (issue 14): 100,000 and 250,000 subscribers, plain and multiplexed, each receiving one NOTIFY,
 * beside one worker at the most its file limit allows. A fresh server per row with enough workers that
 * no process nears its file limit, and client processes of the scenario's own, each with destination
 * addresses of its own. bench/delivery.ts profiles each NOTIFY's delivery.
 */
import { fileLimitSockets } from '../src/http/admission.ts';
import { type DeliveryWindow, type Groups, profileSection, type Settled, settle, watchWindow } from './delivery.ts';
import { type Pool, startPool } from './pool.ts';
import { fileLimit, rssKb } from './procstat.ts';
import { type Column, check, mb, ms, num, ratio, section, type TargetCheck } from './report.ts';
import * as s from './scenario.ts';
import { SCHEMA_CHANNEL } from './servers.ts';
import { runTrial } from './trial.ts';

const LEVELS = [100_000, 250_000];
const QUICK_LEVELS = [5_000, 10_000];
// SO_REUSEPORT spreads connections by a hash, not evenly: plan each process at 90 % of its socket cap.
const FILL = 0.9;
// Workers, and client processes: more would only crowd two cores; a level that needs more is cut to what fits.
const MAX_PROCESSES = 32;
// Each client process gets this many destination addresses of its own (127.0.0.x, each its own port range).
const ADDRESSES_PER_GENERATOR = 2;
const CONNECT_TIMEOUT_MS = 30_000;
const RETRY_REFUSED_MS = 15_000;
// Before connecting and before the NOTIFY, wait (bounded) for the machine to be this quiet, so that a
// previous row's teardown or the work after 250,000 connects does not run into what is measured.
const QUIET = 0.25;
const QUIET_WAIT_MS = 20_000;
// Seconds; above the default 60 so that no keep-alive ping falls into the window after a long connect.
const IDLE_TIMEOUT = 120;
const KB_GOAL = 3;
const LAST_RECEIPT_GOAL_MS = 500;

// Every process inherits this one's file limit: the sockets a server process takes, and what one is planned for.
const LIMIT = fileLimit();
const PER_PROCESS = fileLimitSockets(LIMIT);
const PLANNED = Math.floor(PER_PROCESS * FILL);

/** The rows: the one-worker baseline, then each level plain and multiplexed, cut to what the file limits allow. */
function planCases(levels: readonly number[], quick: boolean) {
  const sized = (requested: number, kind: 'plain' | 'multiplexed', baseline = false) => {
    // One worker: the largest round hundred below its socket cap (no other worker to retry on).
    const clients = Math.min(requested, baseline ? Math.floor((PER_PROCESS - 1) / 100) * 100 : PLANNED * MAX_PROCESSES);
    const processes = Math.ceil(clients / PLANNED);
    return {
      baseline,
      kind,
      requested,
      clients,
      workers: baseline ? 1 : Math.max(quick ? 2 : 1, processes),
      generators: Math.max(2, processes),
    };
  };
  const first = levels[0];
  return [
    ...(first === undefined ? [] : [sized(first, 'plain', true)]),
    ...levels.flatMap((level) => [sized(level, 'plain'), sized(level, 'multiplexed')]),
  ];
}

type Case = ReturnType<typeof planCases>[number];

/** One row as run; client RSS is summed over the client processes the row used. */
async function runCase(context: s.Context, pool: Pool, c: Case) {
  const { rig } = context;
  const name = `${c.kind}, ${num(c.clients)}, workers = ${c.workers}`;
  const label = `${c.kind}, workers = ${c.workers}`;
  await using target = await s.startOursFor(context, {
    server: { workers: c.workers, idle_timeout: IDLE_TIMEOUT },
    label,
  });
  await target.whenHealthy(c.workers);
  const beforeConnect = await settle(QUIET, QUIET_WAIT_MS);
  const generatorPids = pool.pids.slice(0, c.generators);
  const clientsRss = () => generatorPids.reduce((sum, pid) => sum + rssKb(pid), 0);
  const clientsEmptyKb = clientsRss();
  const addresses = c.generators * ADDRESSES_PER_GENERATOR;
  let clientsIdleKb = 0;
  let beforeNotify: Settled | undefined;
  let groups: Groups | undefined;
  let watch: ReturnType<typeof watchWindow> | undefined;
  let window: DeliveryWindow | undefined;
  const result = await runTrial(
    { ...rig, pool },
    {
      label,
      target,
      channel: SCHEMA_CHANNEL,
      clients: c.clients,
      size: 100,
      send: { kind: 'burst', count: 1 },
      urls: c.kind === 'plain' ? target.urls(SCHEMA_CHANNEL, addresses) : target.rootUrls(addresses),
      connect: {
        ...(c.kind === 'plain' ? {} : { subscribe: { channels: [SCHEMA_CHANNEL], filterField: undefined } }),
        generators: c.generators,
        timeoutMs: CONNECT_TIMEOUT_MS,
        retryRefusedMs: RETRY_REFUSED_MS,
        ownAddresses: true,
      },
      hooks: {
        idle: async () => {
          clientsIdleKb = clientsRss();
          beforeNotify = await settle(QUIET, QUIET_WAIT_MS);
          const postgres = rig.db.processes();
          groups = { server: target.processes(), generators: generatorPids, postgres, bench: [process.pid] };
        },
        sending: () => {
          if (groups !== undefined) watch = watchWindow(groups);
        },
        drained: () => {
          window = watch?.stop();
        },
      },
    },
  );
  const settled = [beforeConnect, beforeNotify];
  return { case: c, name, result, window, clientsEmptyKb, clientsIdleKb, settled };
}

type Row = Awaited<ReturnType<typeof runCase>>;

const COLUMNS: readonly Column<Row>[] = [
  ['sockets', (row) => row.case.kind],
  ['workers', (row) => String(row.case.workers)],
  ['generators', (row) => String(row.case.generators)],
  ['opened / target', ({ result: r, case: c }) => `${num(r.connected)} / ${num(c.requested)}`],
  ['received / opened', ({ result: r }) => `${num(r.received)} / ${num(r.connected)}`],
  ['503 refused / retried', ({ result: r }) => `${num(r.refused)} / ${num(r.retried)}`],
  ['connect s', ({ result: r }) => num(r.connectMs / 1000, 1)],
  ['connects/s', ({ result: r }) => num(r.connected / (r.connectMs / 1000))],
  ['NOTIFY → last ms', ({ result: r }) => ms(r.durationMs)],
  ['p50 ms', ({ result: r }) => ms(r.p50Ms)],
  ['p99 ms', ({ result: r }) => ms(r.p99Ms)],
  ['server RSS MB empty → connected', ({ result: r }) => `${mb(r.rssEmptyKb)} → ${mb(r.rssIdleKb)}`],
  ['server KB / conn', ({ result: r }) => num(s.kbPerIdleConnection(r), 2)],
  ['clients RSS MB', (row) => mb(row.clientsIdleKb)],
  [
    'clients KB / conn',
    ({ result: r, clientsIdleKb, clientsEmptyKb }) =>
      num(r.connected > 0 ? (clientsIdleKb - clientsEmptyKb) / r.connected : undefined, 1),
  ],
];

function targetsOf(rows: readonly Row[], first: number | undefined): TargetCheck[] {
  return rows
    .filter((row) => !row.case.baseline)
    .flatMap(({ case: c, result: r }) => {
      const where = `scale ${num(c.clients)} ${c.kind}`;
      const kb = s.kbPerIdleConnection(r);
      const received = `opened ${num(r.connected)} / ${num(c.requested)}, received ${num(r.received)}`;
      const lastReceipt = check(
        `${where}: NOTIFY → last receipt ≤ ${LAST_RECEIPT_GOAL_MS / 1000} s`,
        `${ms(r.durationMs)} ms (workers = ${c.workers})`,
        r.durationMs > 0 ? r.durationMs / LAST_RECEIPT_GOAL_MS : undefined,
        { max: 1 },
      );
      return [
        check(
          `${where}: every client opened and received the NOTIFY`,
          received,
          ratio(r.received, c.requested),
          { min: 1 },
          s.clean(r),
        ),
        ...(c.requested === first ? [lastReceipt] : []),
        check(
          `${where}: memory ≤ ${KB_GOAL} KB per connection (all server processes)`,
          `${num(kb, 2)} KB`,
          kb === undefined ? undefined : kb / KB_GOAL,
          { max: 1 },
        ),
      ];
    });
}

/** The settings the rows ran with, in words. */
function settingsNote(rows: readonly Row[]): string {
  const baseline = rows.find((row) => row.case.baseline)?.case;
  const cut =
    baseline !== undefined && baseline.clients < baseline.requested
      ? `, at the largest count one process's file limit allows (${num(baseline.clients)} of ${num(baseline.requested)})`
      : '';
  return `Settings: a fresh server per row (\`bun src/main.ts\`) with \`[server] workers\` as in the row, \`max_connections\` at its default (50,000 per process, above what a process's files allow, so the file limit is what binds) and \`idle_timeout = ${IDLE_TIMEOUT}\` (so that no keep-alive ping, due about \`idle_timeout\` after a socket opened, falls into the window after a long connect); \`ulimit -n\` ${num(LIMIT)} for every process, so a process holds at most ${num(PER_PROCESS)} client sockets (the limit less 64) and answers 503 \`file_limit\` past that. Workers and generators are planned at ${num(FILL * 100)} % of that, since SO_REUSEPORT spreads connections by a hash. Each generator connects to ${ADDRESSES_PER_GENERATOR} destination addresses of its own (127.0.0.x, so its own ephemeral ports), retries an upgrade refused with 503 on a fresh connection after its Retry-After (1 s) for up to ${num(RETRY_REFUSED_MS / 1000)} s, and stops starting connects after ${num((CONNECT_TIMEOUT_MS * 3) / 1000)} s. The workers = 1 row is the baseline from the same run${cut}. Multiplexed sockets offer \`pgws.v1\` on \`/\` and subscribe to one channel each; plain ones connect to \`/bench_schema\`. Server KB / conn = (RSS of all server processes with the clients connected − the same before any client) ÷ clients; clients RSS is the generators' total with the clients connected. NOTIFY → last = the last client's receipt − the notifier's send time; p50 and p99 are of all clients' receipts. Before connecting and again before the NOTIFY the machine is given up to ${num(QUIET_WAIT_MS / 1000)} s to become less than ${num(QUIET * 100)} % busy.`;
}

/** Runs the scale scenario: its own client processes, a fresh server per row, one NOTIFY per row. */
export async function scale(context: s.Context): Promise<s.Outcome> {
  const { say } = context;
  const levels = context.levels ?? (context.quick ? QUICK_LEVELS : LEVELS);
  const cases = planCases(levels, context.quick);
  const generators = Math.max(...cases.map((c) => c.generators));
  if (generators > MAX_PROCESSES) throw new Error(`scale: ${generators} generators needed, at most ${MAX_PROCESSES}`);
  say(`scale: starting ${generators} generator processes (file limit ${num(LIMIT)} each)`);
  const rows: Row[] = [];
  const notes: string[] = [];
  await using pool = await startPool(generators);
  for (const c of cases) {
    say(`scale: ${c.kind}, ${num(c.clients)} clients, workers = ${c.workers}, ${c.generators} generators`);
    try {
      rows.push(await runCase(context, pool, c));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      say(`scale: ${c.kind}, ${num(c.clients)} clients failed: ${message}`);
      notes.push(`- ${c.kind}, ${num(c.clients)} clients, workers = ${c.workers}: failed: ${message}`);
    }
  }
  for (const row of rows) {
    const cut = !row.case.baseline && row.case.clients < row.case.requested;
    if (cut)
      notes.push(
        `- ${row.name}: cut from ${num(row.case.requested)} to what ${MAX_PROCESSES} processes' file limits allow`,
      );
    for (const [i, settled] of row.settled.entries()) {
      if (settled === undefined || settled.busy < QUIET) continue;
      const what = i === 0 ? 'to connect' : 'to send the NOTIFY';
      notes.push(
        `- ${row.name}: the machine was still ${num(settled.busy * 100)} % busy after ${num(settled.waitedMs / 1000)} s of waiting ${what}`,
      );
    }
    notes.push(...s.anomalies(row.result, row.name));
  }
  const title = `Scale: ${levels.map((n) => num(n)).join(' and ')} concurrent subscribers, one NOTIFY each`;
  return {
    sections: [section(title, COLUMNS, rows, [settingsNote(rows), ...notes]), profileSection(rows)],
    targets: targetsOf(rows, levels[0]),
  };
}
