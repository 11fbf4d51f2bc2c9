/**
 * What every scenario is given and gives back, and the table cells they share. A scenario starts
 * and stops its own servers (in `finally`), runs trials on the shared rig, and returns sections for
 * the report plus the targets it can judge.
 */
import { mb, ms, num, type Section, type TargetCheck } from './stats.ts';
import type { Rig, TrialResult } from './trial.ts';

/** Everything a scenario may use. */
export interface Context {
  readonly rig: Rig;
  readonly quick: boolean;
  /** Where our server writes CPU profiles (`--profile`), else undefined. */
  readonly profileDir: string | undefined;
  /** Narrates progress on stderr, so stdout stays the report. */
  readonly say: (line: string) => void;
  /** The scenario names selected with `--only` (all when empty). */
  readonly only: ReadonlySet<string>;
  /** Client counts for the scale scenario (`--levels`); undefined: its own (bench/scale.ts). */
  readonly levels: readonly number[] | undefined;
}

/** A scenario's contribution to the report. */
export interface Outcome {
  readonly sections: Section[];
  readonly targets: TargetCheck[];
}

/** A scenario: runs its trials and says what they showed. */
export type Scenario = (context: Context) => Promise<Outcome>;

/** "1 client" / "1,000 clients". */
export const clientsText = (n: number): string => `${num(n)} client${n === 1 ? '' : 's'}`;

/** "100 B" / "7,900 B". */
export const bytes = (size: number): string => `${num(size)} B`;

/** "999,000 / 1,000,000" */
export const deliveredCell = (r: TrialResult): string => `${num(r.received)} / ${num(r.expected)}`;

/** Whether a trial delivered everything exactly once and in order (multiplexed: in server seq order too). */
export const clean = (r: TrialResult): boolean =>
  r.lost === 0 && r.duplicated === 0 && r.reordered === 0 && r.seqBreaks === 0 && r.connected === r.clients;

/** Latency and CPU columns every throughput table ends with. */
export const TAIL_HEADERS = [
  'p50 ms',
  'p99 ms',
  'max ms',
  'CPU srv %',
  'CPU pg %',
  'CPU gen %',
  'CPU notif %',
  'CPU other %',
  'RSS MB',
] as const;

/** The cells under {@link TAIL_HEADERS}. */
export const tailCells = (r: TrialResult): string[] => [
  ms(r.p50Ms),
  ms(r.p99Ms),
  ms(r.maxMs),
  num(r.cpu.server),
  num(r.cpu.postgres),
  num(r.cpu.generators),
  num(r.cpu.notifier),
  num(r.cpu.other),
  r.rssAfterKb === 0 ? '–' : mb(r.rssAfterKb),
];

/** Loss, duplicates and reordering in one go. */
export const integrityCells = (r: TrialResult): string[] => [
  `${num(r.connected)}/${num(r.clients)}`,
  deliveredCell(r),
  num(r.lost),
  num(r.duplicated),
  num(r.reordered),
];

/** Headers of {@link integrityCells}. */
export const INTEGRITY_HEADERS = ['connected', 'received / expected', 'lost', 'dup', 'reord'] as const;

/** The trial with the median frames/s of several repetitions (the lower middle for an even count). */
export function median(results: readonly TrialResult[]): TrialResult | undefined {
  const sorted = [...results].sort((a, b) => a.framesPerSecond - b.framesPerSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** "1.2–1.9 M" style spread of frames/s over repetitions, or "" for a single run. */
export function spread(results: readonly TrialResult[]): string {
  if (results.length < 2) return '';
  const rates = results.map((r) => r.framesPerSecond);
  return `${num(Math.min(...rates))}–${num(Math.max(...rates))}`;
}

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
