/**
 * The report: its vocabulary (number formats, ratios, target checks, and tables whose columns carry
 * their header and their cell together) and the whole markdown of a run: usage, the machine, the
 * targets with their ratios, every scenario's sections and how the figures were measured. The same
 * markdown goes to stdout and, with --out or a full run, to a file (bench/RESULTS.md).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';
import { fileLimit } from './procstat.ts';

/** A target from the issues, reported beside the measured figure (never asserted). */
export interface TargetCheck {
  readonly name: string;
  /** The measured figure, e.g. "612,000 vs 640,000 frames/s". */
  readonly measured: string;
  /** The ratio the goal is about, if there is one. */
  readonly ratio: number | undefined;
  /** The goal, e.g. "≥ 0.95". */
  readonly goal: string;
  /** undefined when it could not be measured. */
  readonly ok: boolean | undefined;
}

/** One titled table of a scenario, with notes printed under it ("- " notes form one list). */
export interface Section {
  readonly title: string;
  readonly headers: readonly string[];
  readonly rows: readonly (readonly string[])[];
  readonly notes: readonly string[];
}

/** A table column: its header, and its cell for one row. */
export type Column<T> = readonly [header: string, cell: (row: T) => string];

/** A section with one table row per item of `rows`. */
export const section = <T>(
  title: string,
  columns: readonly Column<T>[],
  rows: readonly T[],
  notes: readonly string[],
): Section => ({
  title,
  headers: columns.map(([header]) => header),
  rows: rows.map((row) => columns.map(([, cell]) => cell(row))),
  notes,
});

/** 1234567 → "1,234,567"; fractional values keep up to `digits` decimals. */
export function num(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Milliseconds with two decimals below 10 ms, one below 100, none above. */
export function ms(value: number | undefined): string {
  if (value === undefined) return '–';
  return num(value, value < 10 ? 2 : value < 100 ? 1 : 0);
}

/** "1 run" / "3 runs" / "1,000 clients". */
export const count = (n: number, noun: string): string => `${num(n)} ${noun}${n === 1 ? '' : 's'}`;

/** "100 B" / "7,900 B". */
export const bytes = (size: number): string => `${num(size)} B`;

/** kB → "12.3" MB. */
export const mb = (kb: number): string => num(kb / 1024, 1);

/** a ÷ b, or undefined when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return undefined;
  return a / b;
}

/** A ratio as "0.97×" ("–" when missing). */
export const times = (value: number | undefined): string => (value === undefined ? '–' : `${num(value, 2)}×`);

/** A check against `ratio ≥ min` (or ≤ max); `extraOk` adds conditions such as nothing lost. */
export function check(
  name: string,
  measured: string,
  value: number | undefined,
  bound: { min?: number; max?: number },
  extraOk = true,
): TargetCheck {
  const goal = bound.min !== undefined ? `≥ ${bound.min}` : `≤ ${bound.max}`;
  const ok =
    value === undefined ? undefined : value >= (bound.min ?? value) && value <= (bound.max ?? value) && extraOk;
  return { name, measured, ratio: value, goal, ok };
}

/** A GitHub-flavoured markdown table, columns padded so it also reads well on a terminal. */
function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(headers), line(widths.map((w) => '-'.repeat(Math.max(3, w)))), ...rows.map(line)].join('\n');
}

function renderSection(section: Section): string {
  // Paragraphs get a blank line around them; consecutive "- " bullets stay one list.
  const notes = section.notes.map((note) => (note.startsWith('- ') ? `\n${note}` : `\n\n${note}\n`)).join('');
  return `### ${section.title}\n\n${markdownTable(section.headers, section.rows)}\n${notes}`;
}

/** What the report says about the run itself. */
export interface RunInfo {
  readonly command: string;
  readonly startedAt: Date;
  readonly seconds: number;
  readonly db: { readonly version: string; readonly embedded: boolean };
  readonly generators: number;
  readonly addresses: number;
  readonly failures: readonly string[];
}

const USAGE = `Usage (from the repository root):

    bun run bench                     # full run, about 10 minutes; rewrites bench/RESULTS.md
    bun run bench --quick             # smoke test with smaller counts, about a minute; prints only
    bun run bench --only fanout       # one scenario (repeat --only or use commas):
                                      #   capacity, fanout, schema, multiplexed, latency, workers, large,
                                      #   fdlimit, auth, tracing, scale, streams, writers, ingest, durable
    bun run bench --only scale --levels 20000
                                      # the scale scenario at other client counts (default 100,000 and
                                      #   250,000; --quick 5,000 and 10,000)
    bun run bench --profile           # also write CPU profiles (.cpuprofile + .md) of our server
    bun run bench --out FILE          # write the report to FILE (partial runs print only by default)
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bun run bench
                                      # use that PostgreSQL instead of a throwaway embedded one`;

const HOW = [
  '- Every payload is `{"r":RUN,"seq":SEQ,"t":SEND_MS,"p":"xxx…"}` padded to the exact size; SEND_MS is the notifier\'s `performance.timeOrigin + performance.now()`. Clients parse seq and t from the frame; a bitset per client finds duplicates, and order is checked per producer connection (commit order).',
  '- Notifier: 4 producer connections, each sending batches of `SELECT count(pg_notify(ch, rpad(…))) FROM generate_series(…)` (one transaction per batch), with a credit window of 512 KiB of payload ahead of the slowest open client. The fixed-rate scenario uses one connection and one notification per transaction.',
  '- Clients are Bun `WebSocket`s in the generator processes (bench/generator.ts), spread round-robin over the generators and destination addresses; raw LISTEN clients are postgres.js `sql.listen` connections in the same processes.',
  "- Multiplexed clients (bench/mux-client.ts) offer `pgws.v1` on `/`, send their subscribes once `ready` arrives and count as open once every `subscribed` answer is in; the tracker reads the payload out of each `message` frame and also checks the server's `seq` per channel. A client meant to get only a share (one channel of 100, one filter of 10) earns credit as unique × share, so the window means the same for every client. The replay is timed in the orchestrator process with its own socket.",
  '- A trial ends when every client has everything, or when no frame arrived for 3 s (then the rest is reported as lost).',
  "- CPU: utime + stime (+ reaped children) from /proc/<pid>/stat before and after the send-and-drain phase, as % of one core (200 % = this whole machine). srv = the server process tree, pg = the postmaster and all its children, gen = the generator processes, notif = the orchestrator (notifier) process, other = the machine's busy time (/proc/stat) not in those four: kernel threads and anything else running on the machine (a high value means the trial was disturbed). RSS = VmRSS of the server tree.",
  "- Two cores hold everything: from 100 clients up the generators use about three quarters of the machine and the frames/s ceiling is the machine's, so the ratios compare the servers under the same load rather than each server's own limit.",
  "- Latency = client receive time − send stamp, in an HdrHistogram (hdr-histogram-js, 3 significant digits: within 0.1 %), filled from each frame's stored latency after the measured window; p50/p99 over all frames of all clients.",
];

const TARGET_COLUMNS: readonly Column<TargetCheck>[] = [
  ['', (t) => (t.ok === undefined ? '?' : t.ok ? '✓' : '✗')],
  ['target', (t) => t.name],
  ['measured', (t) => t.measured],
  ['ratio', (t) => (t.ratio === undefined ? '–' : num(t.ratio, 2))],
  ['goal', (t) => t.goal],
];

/** The whole report as markdown. */
export function renderReport(info: RunInfo, sections: readonly Section[], targets: readonly TargetCheck[]): string {
  const met = targets.filter((t) => t.ok === true).length;
  const database = info.db.embedded ? 'embedded, started by the benchmark' : 'BENCH_DATABASE_URL';
  const targetTable = section('', TARGET_COLUMNS, targets, []);
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const machine = [
    `- ${availableParallelism()} CPUs (nproc), ${cpu}`,
    `- ${num(totalmem() / 2 ** 30, 1)} GiB memory, Linux ${release()}, open-file limit ${num(fileLimit())}`,
    `- Bun ${Bun.version}, PostgreSQL ${info.db.version} (${database})`,
    `- server, PostgreSQL, ${info.generators} generator processes and the notifier all share this machine; clients connect over loopback to 127.0.0.1..${info.addresses}`,
  ];
  return [
    '# pg-notify-ws benchmark results',
    USAGE,
    '## Run',
    `\`${info.command}\` on ${info.startedAt.toISOString()}, ${num(info.seconds)} s.`,
    machine.join('\n'),
    ...(info.failures.length > 0 ? [['**Failures:**', ...info.failures.map((f) => `- ${f}`)].join('\n')] : []),
    `## Targets (${met} of ${targets.length} met; reported, not asserted)`,
    markdownTable(targetTable.headers, targetTable.rows),
    '## Results',
    sections.map(renderSection).join('\n'),
    '## How it measures',
    `${HOW.join('\n')}\n`,
  ].join('\n\n');
}
