/**
 * Fan-out as fast as possible, 1 / 100 / 1,000 clients × 100 B and 7,900 B, beside raw LISTEN and the
 * bare bridge. Ours runs on an undeclared (raw) channel and on the schema channel ("every feature on"),
 * which also gives schema vs raw (`--only schema` runs just ours). Each cell is repeated, the servers
 * taking turns, and the median run is reported: on two shared cores one run can be off by a factor of two.
 */
import { bytes, type Column, check, count, ms, num, ratio, section, type TargetCheck, times } from './report.ts';
import * as s from './scenario.ts';
import { SCHEMA_CHANNEL, startBare, type Target } from './servers.ts';
import { runTrial } from './trial.ts';

const SIZES = [100, 7900] as const;
const CLIENTS = [1, 100, 1000] as const;
const VARIANTS = ['listen', 'bare', 'raw', 'schema'] as const;
type Variant = (typeof VARIANTS)[number];

const LABELS: Readonly<Record<Variant, string>> = {
  listen: 'raw LISTEN',
  bare: 'bare',
  raw: 'ours, raw channel',
  schema: 'ours, schema channel',
};

/** Notifications per trial: a second or more at the rates this machine reaches. */
function notifications(quick: boolean, clients: number, size: number): number {
  if (clients === 1) return size <= 100 ? (quick ? 150_000 : 600_000) : quick ? 10_000 : 40_000;
  const frames = size <= 100 ? (quick ? 200_000 : 3_000_000) : quick ? 20_000 : 400_000;
  return Math.round(frames / clients);
}

/** All runs of one server variant in one cell. */
type Cell = s.Runs & { readonly variant: Variant; readonly clients: number; readonly size: number };

/** Runs the fan-out matrix (and, with it, the schema-vs-raw comparison). */
export async function fanout(context: s.Context): Promise<s.Outcome> {
  const baselines = context.only.size === 0 || context.only.has('fanout');
  const repetitions = context.quick ? 1 : 3;
  const { rig, say } = context;
  await using ours = await s.startOursFor(context);
  await using bare = baselines ? await startBare(rig.db.url) : undefined;
  // Raw LISTEN has no server; each variant's own channel keeps stray frames of another out.
  const servers: Record<Variant, { target: Target | undefined; channel: (size: number, n: number) => string }> = {
    listen: { target: undefined, channel: (size) => `bench_pg_${size}` },
    bare: { target: bare, channel: (size, n) => `bench_bare_${size}_${n}` },
    raw: { target: ours, channel: (size, n) => `bench_raw_${size}_${n}` },
    schema: { target: ours, channel: () => SCHEMA_CHANNEL },
  };
  const cells: Cell[] = [];
  for (const size of SIZES) {
    for (const clients of CLIENTS) {
      const variants = VARIANTS.filter((v) =>
        v === 'listen' ? baselines && clients === 1 : v !== 'bare' || baselines,
      );
      const send = { kind: 'burst', count: notifications(context.quick, clients, size) } as const;
      const results = await s.inTurns(variants, repetitions, (variant, round) => {
        say(`fan-out: ${LABELS[variant]}, ${count(clients, 'client')}, ${bytes(size)}, run ${round}/${repetitions}`);
        const { target, channel } = servers[variant];
        const label = LABELS[variant];
        return runTrial(rig, { label, target, channel: channel(size, clients), clients, size, send });
      });
      for (const [i, variant] of variants.entries()) {
        const runs = s.runsOf(results[i] ?? []);
        if (runs !== undefined) cells.push({ ...runs, variant, clients, size });
      }
    }
  }
  const pick = (variant: Variant, clients: number, size: number) =>
    cells.find((c) => c.variant === variant && c.clients === clients && c.size === size);
  const schema = [schemaSection(pick)];
  if (!baselines) return { sections: schema, targets: schemaTargets(pick) };
  return {
    sections: [fanoutSection(cells, pick, repetitions), ...schema],
    targets: [...fanoutTargets(pick), ...schemaTargets(pick)],
  };
}

type Pick = (variant: Variant, clients: number, size: number) => Cell | undefined;
const rate = (cell: Cell | undefined) => cell?.r.framesPerSecond;

function fanoutSection(cells: readonly Cell[], pick: Pick, repetitions: number) {
  const columns: Column<Cell>[] = [
    ['server', ({ variant }) => LABELS[variant]],
    ['clients', ({ clients }) => num(clients)],
    ['payload', ({ size }) => bytes(size)],
    ...s.INTEGRITY,
    ...s.RATE,
    [
      '× bare',
      (c) => times(c.variant === 'listen' ? undefined : ratio(rate(c), rate(pick('bare', c.clients, c.size)))),
    ],
    ['× raw LISTEN', (c) => times(c.clients === 1 ? ratio(rate(c), rate(pick('listen', 1, c.size))) : undefined)],
    ...s.TAIL,
  ];
  const notes = cells.flatMap((c) =>
    s.runNotes(`${LABELS[c.variant]}, ${count(c.clients, 'client')}, ${bytes(c.size)}`, c.runs),
  );
  return section('Fan-out, as fast as possible', columns, cells, [
    `${s.medianOf(repetitions)} (servers taking turns); "range of runs" is the slowest–fastest. frames/s = frames received by all clients ÷ (last receive − first send). The notifier keeps at most 512 KiB of payload ahead of the slowest client (credit window), so a run measures what the chain sustains, not how fast a buffer overflows; latency at saturation is mostly that queue.`,
    ...new Set(notes),
  ]);
}

/** Ours on both channels, cell by cell. */
function schemaSection(pick: Pick) {
  const pair = (clients: number, size: number) => ({
    clients,
    size,
    raw: pick('raw', clients, size)?.r,
    schema: pick('schema', clients, size)?.r,
  });
  const pairs = SIZES.flatMap((size) => CLIENTS.map((clients) => pair(clients, size)));
  const columns: Column<ReturnType<typeof pair>>[] = [
    ['clients', (p) => num(p.clients)],
    ['payload', (p) => bytes(p.size)],
    ['raw frames/s', (p) => num(p.raw?.framesPerSecond)],
    ['schema frames/s', (p) => num(p.schema?.framesPerSecond)],
    ['schema × raw', (p) => times(ratio(p.schema?.framesPerSecond, p.raw?.framesPerSecond))],
    ['lost raw / schema', (p) => `${num(p.raw?.lost)} / ${num(p.schema?.lost)}`],
    ['p99 ms raw / schema', (p) => `${ms(p.raw?.p99Ms)} / ${ms(p.schema?.p99Ms)}`],
    ['CPU srv % raw / schema', (p) => `${num(p.raw?.cpu.server)} / ${num(p.schema?.cpu.server)}`],
  ];
  return section('Schema channel beside a raw channel (ours, same payloads, same server process)', columns, pairs, []);
}

function schemaTargets(pick: Pick): TargetCheck[] {
  return SIZES.flatMap((size) =>
    CLIENTS.map((clients) => {
      const raw = rate(pick('raw', clients, size));
      const schema = rate(pick('schema', clients, size));
      const name = `schema channel ≥ 0.8 × raw channel, ${count(clients, 'client')}, ${bytes(size)}`;
      return check(name, `${num(schema)} vs ${num(raw)} frames/s`, ratio(schema, raw), { min: 0.8 });
    }),
  );
}

function fanoutTargets(pick: Pick): TargetCheck[] {
  const targets: TargetCheck[] = [];
  for (const size of SIZES) {
    const listen = rate(pick('listen', 1, size));
    for (const variant of ['raw', 'schema', 'bare'] as const) {
      const r = rate(pick(variant, 1, size));
      const forScale = variant === 'bare' ? ' (the bare bridge, for scale)' : '';
      const name = `1 client, ${LABELS[variant]} ≥ 0.95 × raw LISTEN, ${bytes(size)}${forScale}`;
      targets.push(check(name, `${num(r)} vs ${num(listen)} frames/s`, ratio(r, listen), { min: 0.95 }));
    }
  }
  for (const size of SIZES) {
    for (const clients of CLIENTS.filter((c) => c >= 100)) {
      const schema = pick('schema', clients, size);
      const bare = rate(pick('bare', clients, size));
      const runs = schema?.runs ?? [];
      const measured = `${num(rate(schema))} vs ${num(bare)} frames/s; ${s.faults(runs)}`;
      const name = `${num(clients)} clients, every feature on ≥ 0.9 × bare, nothing lost or reordered, ${bytes(size)}`;
      targets.push(
        check(name, measured, ratio(rate(schema), bare), { min: 0.9 }, runs.length > 0 && runs.every(s.clean)),
      );
    }
  }
  return targets;
}
