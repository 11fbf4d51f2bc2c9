/**
 * The scale scenario's report (bench/scale.ts runs it): what opened and received, connect time,
 * refusals, memory per connection on both sides, the targets, and the settings the rows needed; the
 * profile of the delivery window is bench/scale-profile.ts.
 */

import { profileSection } from './scale-profile.ts';
import { anomalies, clean, type Outcome } from './scenario.ts';
import { check, mb, ms, num, ratio, type TargetCheck } from './stats.ts';
import type { DeliveryWindow, Settled } from './timeline.ts';
import type { TrialResult } from './trial.ts';

/** One row to run: `clients` is `requested` cut to what this machine's file limits allow. */
export interface Case {
  /** The one-worker row, beside which the others are read. */
  readonly baseline: boolean;
  readonly kind: 'plain' | 'multiplexed';
  readonly requested: number;
  readonly clients: number;
  readonly workers: number;
  readonly generators: number;
}

/** One row as run. RSS in kB, summed over the generator processes the row used. */
export interface Row {
  readonly case: Case;
  readonly result: TrialResult;
  readonly window: DeliveryWindow | undefined;
  readonly clientsEmptyKb: number;
  readonly clientsIdleKb: number;
  /** The waits for a quiet machine before connecting and before the NOTIFY. */
  readonly settled: readonly (Settled | undefined)[];
}

/** The settings every row shares, for the notes. */
export interface Settings {
  readonly limit: number;
  readonly perProcess: number;
  readonly fill: number;
  readonly levels: readonly number[];
  readonly maxProcesses: number;
  readonly addressesPerGenerator: number;
  readonly retryRefusedMs: number;
  readonly connectDeadlineMs: number;
  readonly idleTimeout: number;
  readonly quiet: number;
  readonly quietWaitMs: number;
  readonly failures: readonly string[];
}

const KB_GOAL = 3;
const LAST_RECEIPT_GOAL_MS = 500;
// Below this many clients the allocator's and GC's own swings are larger than the clients' share.
const MEANINGFUL_CLIENTS = 1000;

const name = (c: Case) => `${c.kind}, ${num(c.clients)}, workers = ${c.workers}`;
const kbPerConnection = (r: TrialResult): number | undefined =>
  r.connected >= MEANINGFUL_CLIENTS ? (r.rssIdleKb - r.rssEmptyKb) / r.connected : undefined;

function outcomeRow(row: Row): string[] {
  const { case: c, result: r } = row;
  return [
    c.kind,
    String(c.workers),
    String(c.generators),
    `${num(r.connected)} / ${num(c.requested)}`,
    `${num(r.received)} / ${num(r.connected)}`,
    `${num(r.refused)} / ${num(r.retried)}`,
    num(r.connectMs / 1000, 1),
    num(r.connected / (r.connectMs / 1000)),
    ms(r.durationMs),
    ms(r.p50Ms),
    ms(r.p99Ms),
    `${mb(r.rssEmptyKb)} → ${mb(r.rssIdleKb)}`,
    num(kbPerConnection(r), 2),
    mb(row.clientsIdleKb),
    num(r.connected > 0 ? (row.clientsIdleKb - row.clientsEmptyKb) / r.connected : undefined, 1),
  ];
}

function targetsOf(rows: readonly Row[], first: number | undefined): TargetCheck[] {
  return rows
    .filter((row) => !row.case.baseline)
    .flatMap(({ case: c, result: r }) => {
      const where = `${num(c.clients)} ${c.kind}`;
      const kb = kbPerConnection(r);
      return [
        check(
          `scale ${where}: every client opened and received the NOTIFY`,
          `opened ${num(r.connected)} / ${num(c.requested)}, received ${num(r.received)}`,
          ratio(r.received, c.requested),
          { min: 1 },
          clean(r),
        ),
        ...(c.requested === first
          ? [
              check(
                `scale ${where}: NOTIFY → last receipt ≤ ${LAST_RECEIPT_GOAL_MS / 1000} s`,
                `${ms(r.durationMs)} ms (workers = ${c.workers})`,
                r.durationMs > 0 ? r.durationMs / LAST_RECEIPT_GOAL_MS : undefined,
                { max: 1 },
              ),
            ]
          : []),
        check(
          `scale ${where}: memory ≤ ${KB_GOAL} KB per connection (all server processes)`,
          `${num(kb, 2)} KB`,
          kb === undefined ? undefined : kb / KB_GOAL,
          { max: 1 },
        ),
      ];
    });
}

/** Notes for a row whose machine did not get quiet before connecting or before the NOTIFY. */
function unquiet(row: Row, settings: Settings): string[] {
  return row.settled.flatMap((settled, i) =>
    settled !== undefined && settled.busy >= settings.quiet
      ? [
          `- ${name(row.case)}: the machine was still ${num(settled.busy * 100)} % busy after ${num(settled.waitedMs / 1000)} s of waiting ${i === 0 ? 'to connect' : 'to send the NOTIFY'}`,
        ]
      : [],
  );
}

/** The settings the rows ran with, in words. */
function settingsNote(rows: readonly Row[], settings: Settings): string {
  const baseline = rows.find((row) => row.case.baseline);
  const cutBaseline =
    baseline !== undefined && baseline.case.clients < baseline.case.requested
      ? `, at the largest count one process's file limit allows (${num(baseline.case.clients)} of ${num(baseline.case.requested)})`
      : '';
  return [
    'Settings: a fresh server per row (`bun src/main.ts`) with `[server] workers` as in the row, `max_connections` at its default',
    `(50,000 per process, above what a process's files allow, so the file limit is what binds) and \`idle_timeout = ${settings.idleTimeout}\``,
    '(so that no keep-alive ping, due about `idle_timeout` after a socket opened, falls into the window after a long connect);',
    `\`ulimit -n\` ${num(settings.limit)} for every process,`,
    `so a process holds at most ${num(settings.perProcess)} client sockets (the limit less 64) and answers 503 \`file_limit\` past that.`,
    `Workers and generators are planned at ${num(settings.fill * 100)} % of that, since SO_REUSEPORT spreads connections by a hash.`,
    `Each generator connects to ${settings.addressesPerGenerator} destination addresses of its own (127.0.0.x, so its own ephemeral ports),`,
    `retries an upgrade refused with 503 on a fresh connection after its Retry-After (1 s) for up to ${num(settings.retryRefusedMs / 1000)} s,`,
    `and stops starting connects after ${num(settings.connectDeadlineMs / 1000)} s. The workers = 1 row is the baseline from the same run${cutBaseline}.`,
    'Multiplexed sockets offer `pgws.v1` on `/` and subscribe to one channel each; plain ones connect to `/bench_schema`.',
    "Server KB / conn = (RSS of all server processes with the clients connected − the same before any client) ÷ clients; clients RSS is the generators' total with the clients connected.",
    "NOTIFY → last = the last client's receipt − the notifier's send time; p50 and p99 are of all clients' receipts.",
    `Before connecting and again before the NOTIFY the machine is given up to ${num(settings.quietWaitMs / 1000)} s to become less than ${num(settings.quiet * 100)} % busy.`,
  ].join(' ');
}

/** The scale scenario's sections and targets. */
export function scaleOutcome(rows: readonly Row[], settings: Settings): Outcome {
  const cut = rows.filter((row) => !row.case.baseline && row.case.clients < row.case.requested);
  return {
    sections: [
      {
        title: `Scale: ${settings.levels.map((n) => num(n)).join(' and ')} concurrent subscribers, one NOTIFY each`,
        headers: [
          'sockets',
          'workers',
          'generators',
          'opened / target',
          'received / opened',
          '503 refused / retried',
          'connect s',
          'connects/s',
          'NOTIFY → last ms',
          'p50 ms',
          'p99 ms',
          'server RSS MB empty → connected',
          'server KB / conn',
          'clients RSS MB',
          'clients KB / conn',
        ],
        rows: rows.map(outcomeRow),
        notes: [
          settingsNote(rows, settings),
          ...cut.map(
            (row) =>
              `- ${name(row.case)}: cut from ${num(row.case.requested)} to what ${settings.maxProcesses} processes' file limits allow`,
          ),
          ...settings.failures,
          ...rows.flatMap((row) => unquiet(row, settings)),
          ...rows.flatMap((row) => anomalies(row.result, name(row.case))),
        ],
      },
      profileSection(rows.map((row) => ({ name: name(row.case), result: row.result, window: row.window }))),
    ],
    targets: targetsOf(rows, settings.levels[0]),
  };
}
