/**
 * Scale (issue 14): 100,000 and 250,000 concurrent subscribers, plain and multiplexed, every one
 * opened and receiving one NOTIFY; beside them one worker at the largest count its file limit allows,
 * from the same run. A fresh server per row, with `[server] workers` chosen so that no process nears
 * its open-file limit, and generator processes of the scenario's own, each under its own file limit
 * and connecting to destination addresses of its own. The report is bench/scale-report.ts.
 */
import { fileLimitSockets } from '../src/http/admission.ts';
import { type Fleet, startFleet } from './fleet.ts';
import { fileLimit, rssKb } from './procstat.ts';
import { type Case, type Row, scaleOutcome } from './scale-report.ts';
import type { Context, Outcome } from './scenario.ts';
import { SCHEMA_CHANNEL, startOurs } from './servers.ts';
import { num } from './stats.ts';
import { type DeliveryWindow, type Groups, type Settled, settle, watchWindow } from './timeline.ts';
import { runTrial } from './trial.ts';

const LEVELS = [100_000, 250_000];
const QUICK_LEVELS = [5_000, 10_000];
// SO_REUSEPORT spreads connections by a hash, not evenly: plan each process at 90 % of its socket cap.
const FILL = 0.9;
// More would only crowd two cores; a level that needs more is cut to what fits, and says so.
const MAX_WORKERS = 32;
const MAX_GENERATORS = 32;
// Each generator gets this many destination addresses of its own (127.0.0.x, each its own port range).
const ADDRESSES_PER_GENERATOR = 2;
const CONNECT_TIMEOUT_MS = 30_000;
const RETRY_REFUSED_MS = 15_000;
// Before connecting and before the NOTIFY, wait (bounded) for the machine to be this quiet: a
// previous row's teardown, or the kernel's and the collectors' work after 250,000 connects, would
// otherwise run into what is measured.
const QUIET = 0.25;
const QUIET_WAIT_MS = 20_000;
// Seconds; above the default 60 so that no keep-alive ping falls into the window after a long connect.
const IDLE_TIMEOUT = 120;

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/** What this machine's file limit allows: sockets per server process and clients per generator. */
function capacities() {
  const limit = fileLimit();
  const perProcess = fileLimitSockets(limit);
  const planned = Math.floor(perProcess * FILL);
  return { limit, perProcess, planned };
}

/** The rows to run: the one-worker baseline first, then each level plain and multiplexed. */
export function planCases(levels: readonly number[], quick: boolean): Case[] {
  const { perProcess, planned } = capacities();
  const most = planned * Math.min(MAX_WORKERS, MAX_GENERATORS);
  const sized = (requested: number, kind: Case['kind'], baseline = false): Case => {
    // One worker: the largest round hundred below its socket cap (no other worker to retry on).
    const clients = Math.min(requested, baseline ? Math.floor((perProcess - 1) / 100) * 100 : most);
    return {
      baseline,
      kind,
      requested,
      clients,
      workers: baseline ? 1 : Math.max(quick ? 2 : 1, Math.ceil(clients / planned)),
      generators: Math.max(2, Math.ceil(clients / planned)),
    };
  };
  const first = levels[0];
  return [
    ...(first === undefined ? [] : [sized(first, 'plain', true)]),
    ...levels.flatMap((level) => [sized(level, 'plain'), sized(level, 'multiplexed')]),
  ];
}

async function runCase(context: Context, fleet: Fleet, c: Case): Promise<Row> {
  const { rig } = context;
  const label = `${c.kind}, workers = ${c.workers}`;
  const target = await startOurs({
    databaseUrl: rig.db.url,
    server: { workers: c.workers, idle_timeout: IDLE_TIMEOUT },
    label,
    profileDir: context.profileDir,
  });
  try {
    await target.whenHealthy(c.workers);
    const beforeConnect = await settle(QUIET, QUIET_WAIT_MS);
    const generatorPids = fleet.pids.slice(0, c.generators);
    const clientsRss = () => sum(generatorPids.map(rssKb));
    const clientsEmptyKb = clientsRss();
    const addresses = c.generators * ADDRESSES_PER_GENERATOR;
    let clientsIdleKb = 0;
    let groups: Groups = {};
    let beforeNotify: Settled | undefined;
    let watch: ReturnType<typeof watchWindow> | undefined;
    let window: DeliveryWindow | undefined;
    const result = await runTrial(
      { ...rig, fleet },
      {
        label,
        target,
        channel: SCHEMA_CHANNEL,
        clients: c.clients,
        size: 100,
        send: { kind: 'burst', count: 1 },
        ...(c.kind === 'plain'
          ? { urls: target.urls(SCHEMA_CHANNEL, addresses) }
          : { urls: target.rootUrls(addresses), mux: { channels: [SCHEMA_CHANNEL], filterField: undefined } }),
        generators: c.generators,
        connect: { timeoutMs: CONNECT_TIMEOUT_MS, retryRefusedMs: RETRY_REFUSED_MS, ownAddresses: true },
        hooks: {
          idle: async () => {
            clientsIdleKb = clientsRss();
            beforeNotify = await settle(QUIET, QUIET_WAIT_MS);
            // Listed once here: reading the process tables during the window would disturb it.
            groups = {
              server: target.processes(),
              generators: generatorPids,
              postgres: rig.db.processes(),
              bench: [process.pid],
            };
          },
          sending: () => {
            watch = watchWindow(groups, ['server', 'generators']);
          },
          drained: () => {
            window = watch?.stop();
          },
        },
      },
    );
    return { case: c, result, window, clientsEmptyKb, clientsIdleKb, settled: [beforeConnect, beforeNotify] };
  } finally {
    await target.stop();
  }
}

/** Runs the scale scenario: its own generators, a fresh server per row, one NOTIFY per row. */
export async function scale(context: Context): Promise<Outcome> {
  const { say } = context;
  const levels = context.levels ?? (context.quick ? QUICK_LEVELS : LEVELS);
  const cases = planCases(levels, context.quick);
  const generators = Math.max(...cases.map((c) => c.generators));
  if (generators > MAX_GENERATORS) throw new Error(`scale: ${generators} generators needed, at most ${MAX_GENERATORS}`);
  const { limit, perProcess } = capacities();
  say(`scale: starting ${generators} generator processes (file limit ${num(limit)} each)`);
  const fleet = await startFleet(generators);
  const rows: Row[] = [];
  const failures: string[] = [];
  try {
    for (const c of cases) {
      say(`scale: ${c.kind}, ${num(c.clients)} clients, workers = ${c.workers}, ${c.generators} generators`);
      try {
        rows.push(await runCase(context, fleet, c));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        say(`scale: ${c.kind}, ${num(c.clients)} clients failed: ${message}`);
        failures.push(`- ${c.kind}, ${num(c.clients)} clients, workers = ${c.workers}: failed: ${message}`);
      }
    }
  } finally {
    await fleet.stop();
  }
  return scaleOutcome(rows, {
    limit,
    perProcess,
    fill: FILL,
    levels,
    maxProcesses: Math.min(MAX_WORKERS, MAX_GENERATORS),
    addressesPerGenerator: ADDRESSES_PER_GENERATOR,
    retryRefusedMs: RETRY_REFUSED_MS,
    connectDeadlineMs: CONNECT_TIMEOUT_MS * 3,
    idleTimeout: IDLE_TIMEOUT,
    quiet: QUIET,
    quietWaitMs: QUIET_WAIT_MS,
    failures,
  });
}
