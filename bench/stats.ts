/**
 * The report's vocabulary: number formats, ratios, markdown tables and target checks. Pure; the
 * percentiles themselves come from bench/histogram.ts.
 */

/** A target from the issue, reported beside the measured figure (never asserted). */
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

/** One titled table of a scenario, with notes printed under it. */
export interface Section {
  readonly title: string;
  readonly headers: readonly string[];
  readonly rows: readonly (readonly string[])[];
  readonly notes: readonly string[];
}

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

/** a ÷ b, or undefined when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return undefined;
  return a / b;
}

/** A ratio as "0.97×" ("–" when missing). */
export const times = (value: number | undefined): string => (value === undefined ? '–' : `${num(value, 2)}×`);

/** kB → "12.3" MB. */
export const mb = (kb: number): string => num(kb / 1024, 1);

/** A check against `ratio ≥ min` (or ≤ max); `extraOk` adds conditions such as nothing lost. */
export function check(
  name: string,
  measured: string,
  value: number | undefined,
  bound: { min?: number; max?: number },
  extraOk = true,
): TargetCheck {
  const goal = bound.min !== undefined ? `≥ ${bound.min}` : `≤ ${bound.max}`;
  const within =
    value === undefined
      ? undefined
      : (bound.min === undefined || value >= bound.min) && (bound.max === undefined || value <= bound.max);
  return { name, measured, ratio: value, goal, ok: within === undefined ? undefined : within && extraOk };
}

/** ✓, ✗, or ? when a target could not be measured. */
export const mark = (ok: boolean | undefined): string => (ok === undefined ? '?' : ok ? '✓' : '✗');

/** A GitHub-flavoured markdown table, columns padded so it also reads well on a terminal. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(headers), line(widths.map((w) => '-'.repeat(Math.max(3, w)))), ...rows.map(line)].join('\n');
}

/** A section as markdown: heading, table, notes. */
export function renderSection(section: Section): string {
  // Paragraphs get a blank line around them; consecutive "- " bullets stay one list.
  const notes = section.notes.map((note) => (note.startsWith('- ') ? `\n${note}` : `\n\n${note}\n`)).join('');
  return `### ${section.title}\n\n${markdownTable(section.headers, section.rows)}\n${notes}\n`;
}

/** The targets as a markdown table. */
export function renderTargets(targets: readonly TargetCheck[]): string {
  const rows = targets.map((t) => [
    mark(t.ok),
    t.name,
    t.measured,
    t.ratio === undefined ? '–' : num(t.ratio, 2),
    t.goal,
  ]);
  return markdownTable(['', 'target', 'measured', 'ratio', 'goal'], rows);
}
