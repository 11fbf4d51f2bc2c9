/**
 * What every scenario is given and gives back (sections and the targets it can judge), and what they
 * share: cases taking turns, repeated runs read by their median, and the columns of throughput tables.
 */
import { type Column, count, mb, ms, num, type Section, type TargetCheck } from './report.ts';
import { type OursOptions, startOurs, type Target } from './servers.ts';
import type { Rig, TrialResult } from './trial.ts';

/** Everything a scenario may use. */
export interface Context {
  readonly rig: Rig;
  readonly quick: boolean;
  /** Where our server writes CPU profiles (`--profile`), else undefined. */
  readonly profileDir: string | undefined;
  /** Narrates progress on stderr, so stdout stays the report. */
  readonly say: (line: string) => void;
  /** `--only` (all when empty). */
  readonly only: ReadonlySet<string>;
  /** `--levels`, the scale scenario's client counts. */
  readonly levels: readonly number[] | undefined;
}

/** A scenario's contribution to the report. */
export type Outcome = { readonly sections: Section[]; readonly targets: TargetCheck[] };

/** Our server on the run's database (profiled with --profile), with `options` on top. */
export const startOursFor = (context: Context, options: Omit<OursOptions, 'databaseUrl'> = {}): Promise<Target> =>
  startOurs({ databaseUrl: context.rig.db.url, profileDir: context.profileDir, ...options });

/**
 * Runs `trial` for every case, `repetitions` rounds, the cases taking turns in another order each round
 * so that drift on a shared machine favours none; the results per case, in the cases' order.
 */
export async function inTurns<C, R = TrialResult>(
  cases: readonly C[],
  repetitions: number,
  trial: (c: C, round: number) => Promise<R>,
): Promise<R[][]> {
  const results = cases.map((): R[] => []);
  for (let round = 1; round <= repetitions; round++) {
    for (let turn = 0; turn < cases.length; turn++) {
      const index = (turn + round - 1) % cases.length;
      results[index]?.push(await trial(cases[index] as C, round));
    }
  }
  return results;
}

/** The middle item by `key` (the lower middle for an even count); undefined when there is none. */
export const middle = <T>(items: readonly T[], key: (item: T) => number): T | undefined =>
  [...items].sort((a, b) => key(a) - key(b))[Math.floor((items.length - 1) / 2)];

/** The runs of one case, read by the one with the median frames/s. */
export type Runs = { readonly runs: readonly TrialResult[]; readonly r: TrialResult };

/** {@link Runs} of `results`, if any. */
export function runsOf(results: readonly TrialResult[]): Runs | undefined {
  const r = middle(results, (x) => x.framesPerSecond);
  return r === undefined ? undefined : { runs: results, r };
}

/** CPU time per frame received, in ns: what the server (or the generators) spent on each. */
export const perFrameNs = (seconds: number, r: TrialResult) =>
  r.received > 0 ? (seconds * 1e9) / r.received : undefined;

/** "1,200,000–1,900,000": the range of a figure over repetitions, or "" for a single run. */
export const rangeOf = (values: readonly number[]): string =>
  values.length < 2 ? '' : `${num(Math.min(...values))}–${num(Math.max(...values))}`;

/** Whether a trial delivered everything exactly once and in order (multiplexed: in server seq order too). */
export const clean = (r: TrialResult): boolean =>
  r.lost === 0 && r.duplicated === 0 && r.reordered === 0 && r.seqBreaks === 0 && r.connected === r.clients;

/** "lost 0, dup 0, reordered 0, seq breaks 0 over 3 runs": every run's faults, not just the median one's. */
export function faults(results: readonly TrialResult[]): string {
  const sum = (pick: (r: TrialResult) => number) => num(results.reduce((n, r) => n + pick(r), 0));
  const seq = sum((r) => r.seqBreaks);
  return `lost ${sum((r) => r.lost)}, dup ${sum((r) => r.duplicated)}, reordered ${sum((r) => r.reordered)}, seq breaks ${seq} over ${count(results.length, 'run')}`;
}

/** "Median of 3 runs by frames/s" (the first words of most notes). */
export const medianOf = (repetitions: number): string => `Median of ${count(repetitions, 'run')} by frames/s`;

// Below this many clients the allocator's and GC's own swings are larger than the clients' share.
export const MEANINGFUL_CLIENTS = 1000;

/** Server KB per idle client: (RSS with the clients connected − RSS before) ÷ clients, from 1,000 up. */
export const kbPerIdleConnection = (r: TrialResult | undefined): number | undefined =>
  r !== undefined && r.connected >= MEANINGFUL_CLIENTS ? (r.rssIdleKb - r.rssEmptyKb) / r.connected : undefined;

/** "999,000 / 1,000,000" */
export const delivered = (r: TrialResult): string => `${num(r.received)} / ${num(r.expected)}`;

type OfTrial = { readonly r: TrialResult };

/** Loss, duplicates and reordering. */
export const INTEGRITY: readonly Column<OfTrial>[] = [
  ['connected', ({ r }) => `${num(r.connected)}/${num(r.clients)}`],
  ['received / expected', ({ r }) => delivered(r)],
  ['lost', ({ r }) => num(r.lost)],
  ['dup', ({ r }) => num(r.duplicated)],
  ['reord', ({ r }) => num(r.reordered)],
];

/** The median rate and the range of all runs. */
export const RATE: readonly Column<Runs>[] = [
  ['frames/s', ({ r }) => num(r.framesPerSecond)],
  ['range of runs', ({ runs }) => rangeOf(runs.map((r) => r.framesPerSecond))],
];

/** Latency percentiles. */
export const LATENCY: readonly Column<OfTrial>[] = [
  ['p50 ms', ({ r }) => ms(r.p50Ms)],
  ['p99 ms', ({ r }) => ms(r.p99Ms)],
  ['max ms', ({ r }) => ms(r.maxMs)],
];

/** Latency, CPU and memory columns every throughput table ends with. */
export const TAIL: readonly Column<OfTrial>[] = [
  ...LATENCY,
  ['CPU srv %', ({ r }) => num(r.cpu.server)],
  ['CPU pg %', ({ r }) => num(r.cpu.postgres)],
  ['CPU gen %', ({ r }) => num(r.cpu.generators)],
  ['CPU notif %', ({ r }) => num(r.cpu.notifier)],
  ['CPU other %', ({ r }) => num(r.cpu.other)],
  ['RSS MB', ({ r }) => (r.rssAfterKb === 0 ? '–' : mb(r.rssAfterKb))],
];

/** Notes about anything unusual in a trial: failed connects, server-side closes, stalled credit. */
export function anomalies(r: TrialResult, name: string): string[] {
  const notes: string[] = [];
  if (r.connectFailures > 0)
    notes.push(`${name}: ${num(r.connectFailures)} clients failed to connect (${r.firstError ?? 'no error text'})`);
  const closes = Object.entries(r.closes).filter(([code]) => code !== '1000');
  if (closes.length > 0)
    notes.push(
      `${name}: sockets closed during the trial: ${closes.map(([code, n]) => `${num(n)}× code ${code}`).join(', ')}`,
    );
  if (r.lost > 0)
    notes.push(
      `${name}: ${num(r.lost)} of ${num(r.expected)} frames missing at the end, at ${num(r.incomplete)} of ${num(r.connected)} clients (the drain stops after 3 s without a frame)`,
    );
  if (r.duplicated > 0 || r.reordered > 0)
    notes.push(`${name}: ${num(r.duplicated)} frames arrived more than once, ${num(r.reordered)} out of order`);
  if (r.openLoop)
    notes.push(`${name}: credit stalled (a client stopped making progress); the rest was sent without flow control`);
  if (r.sent < r.planned)
    notes.push(`${name}: send deadline reached after ${num(r.sent)} of ${num(r.planned)} notifications`);
  if (r.stray > 0) {
    const first = r.firstStray === undefined ? '' : ` (the first: \`${r.firstStray.slice(0, 120)}\`)`;
    notes.push(`${name}: ${num(r.stray)} frames from another run, unparsable or not meant for the client${first}`);
  }
  if (r.seqBreaks > 0) notes.push(`${name}: ${num(r.seqBreaks)} multiplexed frames broke their channel's seq order`);
  if (r.diagnosis !== '') notes.push(`${name}: the server's /metrics: ${r.diagnosis}`);
  return notes.map((note) => `- ${note}`);
}

/** {@link anomalies} of every run of a case, each named "NAME, run i". */
export const runNotes = (name: string, results: readonly TrialResult[]): string[] =>
  results.flatMap((r, i) => anomalies(r, `${name}, run ${i + 1}`));
