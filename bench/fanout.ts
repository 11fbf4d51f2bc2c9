/**
 * Fan-out as fast as possible, 1 / 100 / 1,000 clients × 100 B and 7,900 B payloads, with both
 * baselines in the same run: raw LISTEN (one plain `sql.listen`, the database's ceiling) and the
 * bare bridge. Ours runs twice per cell, on an undeclared (raw) channel and on the schema channel
 * ("every feature on"), which also gives the schema-vs-raw comparison. `--only schema` runs just ours.
 *
 * Each cell is repeated (3 times in a full run) with the servers interleaved, and the median run by
 * frames/s is reported: on two shared cores a single run can be off by a factor of two.
 */
import {
  anomalies,
  bytes,
  type Context,
  clean,
  clientsText,
  INTEGRITY_HEADERS,
  integrityCells,
  median,
  type Outcome,
  spread,
  TAIL_HEADERS,
  tailCells,
} from './scenario.ts';
import { SCHEMA_CHANNEL, startBare, startOurs } from './servers.ts';
import { check, ms, num, ratio, type TargetCheck, times } from './stats.ts';
import type { Target } from './target.ts';
import { runTrial, type TrialResult } from './trial.ts';

const SIZES = [100, 7900] as const;
const CLIENTS = [1, 100, 1000] as const;
const VARIANTS = ['bare', 'raw', 'schema'] as const;
type Variant = (typeof VARIANTS)[number] | 'listen';

/** Notifications per trial: a second or more at the rates this machine reaches. */
function notifications(quick: boolean, clients: number, size: number): number {
  if (clients === 1) return size <= 100 ? (quick ? 150_000 : 600_000) : quick ? 10_000 : 40_000;
  const frames = size <= 100 ? (quick ? 200_000 : 3_000_000) : quick ? 20_000 : 400_000;
  return Math.round(frames / clients);
}

/** All repetitions of one server variant in one cell. */
interface Runs {
  readonly variant: Variant;
  readonly clients: number;
  readonly size: number;
  readonly results: TrialResult[];
}

const LABELS: Readonly<Record<Variant, string>> = {
  listen: 'raw LISTEN',
  bare: 'bare',
  raw: 'ours, raw channel',
  schema: 'ours, schema channel',
};

/** Runs the fan-out matrix (and, with it, the schema-vs-raw comparison). */
export async function fanout(context: Context): Promise<Outcome> {
  const baselines = context.only.size === 0 || context.only.has('fanout');
  const repetitions = context.quick ? 1 : 3;
  const { rig, say } = context;
  const started: Target[] = [];
  const runs: Runs[] = [];
  const runsOf = (variant: Variant, clients: number, size: number) => {
    let entry = runs.find((r) => r.variant === variant && r.clients === clients && r.size === size);
    if (entry === undefined) {
      entry = { variant, clients, size, results: [] };
      runs.push(entry);
    }
    return entry.results;
  };
  try {
    const ours = await startOurs({ databaseUrl: rig.db.url, profileDir: context.profileDir });
    started.push(ours);
    const bare = baselines ? await startBare(rig.db.url) : undefined;
    if (bare !== undefined) started.push(bare);
    const servers: Readonly<
      Record<
        (typeof VARIANTS)[number],
        { target: Target | undefined; channel: (size: number, clients: number) => string }
      >
    > = {
      bare: { target: bare, channel: (size, clients) => `bench_bare_${size}_${clients}` },
      raw: { target: ours, channel: (size, clients) => `bench_raw_${size}_${clients}` },
      schema: { target: ours, channel: () => SCHEMA_CHANNEL },
    };
    for (const size of SIZES) {
      for (const clients of CLIENTS) {
        const send = { kind: 'burst', count: notifications(context.quick, clients, size) } as const;
        for (let round = 1; round <= repetitions; round++) {
          const tag = `${clientsText(clients)}, ${bytes(size)}, run ${round}/${repetitions}`;
          if (baselines && clients === 1) {
            say(`fan-out: raw LISTEN, ${tag}`);
            runsOf('listen', 1, size).push(
              await runTrial(rig, {
                label: LABELS.listen,
                target: undefined,
                channel: `bench_pg_${size}`,
                clients,
                size,
                send,
              }),
            );
          }
          for (const variant of VARIANTS) {
            const { target, channel } = servers[variant];
            if (target === undefined) continue;
            say(`fan-out: ${LABELS[variant]}, ${tag}`);
            runsOf(variant, clients, size).push(
              await runTrial(rig, {
                label: LABELS[variant],
                target,
                channel: channel(size, clients),
                clients,
                size,
                send,
              }),
            );
          }
        }
      }
    }
  } finally {
    await Promise.all(started.map((t) => t.stop()));
  }
  const all = (variant: Variant, clients: number, size: number) =>
    runs.find((r) => r.variant === variant && r.clients === clients && r.size === size)?.results ?? [];
  const pick = (variant: Variant, clients: number, size: number) => median(all(variant, clients, size));
  const sections = baselines ? [fanoutSection(runs, pick, repetitions), schemaSection(pick)] : [schemaSection(pick)];
  const targets = baselines ? [...fanoutTargets(pick, all), ...schemaTargets(pick)] : schemaTargets(pick);
  return { sections, targets };
}

type Pick = (variant: Variant, clients: number, size: number) => TrialResult | undefined;
type All = (variant: Variant, clients: number, size: number) => readonly TrialResult[];

function fanoutSection(runs: readonly Runs[], pick: Pick, repetitions: number): Outcome['sections'][number] {
  const headers = [
    'server',
    'clients',
    'payload',
    ...INTEGRITY_HEADERS,
    'frames/s',
    'range of runs',
    '× bare',
    '× raw LISTEN',
    ...TAIL_HEADERS,
  ];
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const { variant, clients, size, results } of runs) {
    const r = pick(variant, clients, size);
    if (r === undefined) continue;
    const bare = variant === 'listen' ? undefined : pick('bare', clients, size);
    const listen = clients === 1 ? pick('listen', 1, size) : undefined;
    rows.push([
      r.label,
      num(clients),
      bytes(size),
      ...integrityCells(r),
      num(r.framesPerSecond),
      spread(results),
      times(ratio(r.framesPerSecond, bare?.framesPerSecond)),
      times(ratio(r.framesPerSecond, listen?.framesPerSecond)),
      ...tailCells(r),
    ]);
    for (const [i, each] of results.entries()) {
      notes.push(...anomalies(each, `${r.label}, ${clientsText(clients)}, ${bytes(size)}, run ${i + 1}`));
    }
  }
  return {
    title: 'Fan-out, as fast as possible',
    headers,
    rows,
    notes: [
      `Median of ${repetitions} run${repetitions === 1 ? '' : 's'} by frames/s (servers interleaved); "range of runs" is the slowest–fastest. frames/s = frames received by all clients ÷ (last receive − first send). The notifier keeps at most 512 KiB of payload ahead of the slowest client (credit window), so a run measures what the chain sustains, not how fast a buffer overflows; latency at saturation is mostly that queue.`,
      ...new Set(notes),
    ],
  };
}

function schemaSection(pick: Pick): Outcome['sections'][number] {
  const rows: string[][] = [];
  for (const size of SIZES) {
    for (const clients of CLIENTS) {
      const raw = pick('raw', clients, size);
      const schema = pick('schema', clients, size);
      rows.push([
        num(clients),
        bytes(size),
        num(raw?.framesPerSecond),
        num(schema?.framesPerSecond),
        times(ratio(schema?.framesPerSecond, raw?.framesPerSecond)),
        `${num(raw?.lost)} / ${num(schema?.lost)}`,
        `${ms(raw?.p99Ms)} / ${ms(schema?.p99Ms)}`,
        `${num(raw?.cpu.server)} / ${num(schema?.cpu.server)}`,
      ]);
    }
  }
  return {
    title: 'Schema channel beside a raw channel (ours, same payloads, same server process)',
    headers: [
      'clients',
      'payload',
      'raw frames/s',
      'schema frames/s',
      'schema × raw',
      'lost raw / schema',
      'p99 ms raw / schema',
      'CPU srv % raw / schema',
    ],
    rows,
    notes: [],
  };
}

function schemaTargets(pick: Pick): TargetCheck[] {
  return SIZES.flatMap((size) =>
    CLIENTS.map((clients) => {
      const raw = pick('raw', clients, size);
      const schema = pick('schema', clients, size);
      const measured = `${num(schema?.framesPerSecond)} vs ${num(raw?.framesPerSecond)} frames/s`;
      return check(
        `schema channel ≥ 0.8 × raw channel, ${clientsText(clients)}, ${bytes(size)}`,
        measured,
        ratio(schema?.framesPerSecond, raw?.framesPerSecond),
        { min: 0.8 },
      );
    }),
  );
}

function fanoutTargets(pick: Pick, all: All): TargetCheck[] {
  const targets: TargetCheck[] = [];
  for (const size of SIZES) {
    const listen = pick('listen', 1, size);
    for (const variant of ['raw', 'schema', 'bare'] as const) {
      const r = pick(variant, 1, size);
      if (r === undefined) continue;
      const measured = `${num(r.framesPerSecond)} vs ${num(listen?.framesPerSecond)} frames/s`;
      const name = `1 client, ${r.label} ≥ 0.95 × raw LISTEN, ${bytes(size)}${variant === 'bare' ? ' (the bare bridge, for scale)' : ''}`;
      targets.push(check(name, measured, ratio(r.framesPerSecond, listen?.framesPerSecond), { min: 0.95 }));
    }
  }
  for (const size of SIZES) {
    for (const clients of CLIENTS.filter((c) => c >= 100)) {
      const r = pick('schema', clients, size);
      const bare = pick('bare', clients, size);
      if (r === undefined) continue;
      // "Nothing lost or reordered" holds for every run, not just the median one.
      const runs = all('schema', clients, size);
      const sum = (f: (x: TrialResult) => number) => num(runs.reduce((n, x) => n + f(x), 0));
      const measured = `${num(r.framesPerSecond)} vs ${num(bare?.framesPerSecond)} frames/s; lost ${sum((x) => x.lost)}, dup ${sum((x) => x.duplicated)}, reordered ${sum((x) => x.reordered)} over ${runs.length} run${runs.length === 1 ? '' : 's'}`;
      const name = `${num(clients)} clients, every feature on ≥ 0.9 × bare, nothing lost or reordered, ${bytes(size)}`;
      targets.push(
        check(name, measured, ratio(r.framesPerSecond, bare?.framesPerSecond), { min: 0.9 }, runs.every(clean)),
      );
    }
  }
  return targets;
}
