/**
 * The multiplexed protocol (`pgws.v1`) beside plain mode on one server, each case against a baseline of
 * the same run: multiplexed vs plain fan-out, 10 filters vs none, one socket on 100 channels vs 100
 * plain sockets; the cases take turns. Then the history replay (bench/replay.ts).
 */
import { replay } from './replay.ts';
import { bytes, type Column, check, num, ratio, section, type TargetCheck, times } from './report.ts';
import * as s from './scenario.ts';
import { SCHEMA_CHANNEL, schemaChannelToml, type Target } from './servers.ts';
import { type Rig, runTrial, type TrialSpec } from './trial.ts';

const SIZE = 100;
const CLIENTS = 1000;
const FILTERS = 10;
const CHANNELS = 100;
const KEYED_CHANNEL = 'bench_keyed';
// Channels bench_many_0..99, the notifications round-robin over them in groups of one per producer
// connection (bench/notifier.ts `Spread`).
const MANY_PREFIX = 'bench_many_';
const manyChannels = Array.from({ length: CHANNELS }, (_, i) => `${MANY_PREFIX}${i}`);
// A multiplexed frame is the payload in an envelope: {"type":"message","channel":"bench_schema","seq":N,"payload":…}
// is 65 bytes around it with a 4-digit N. Plain frames that large tell the frame's size from the protocol.
const ENVELOPE = 65;

type CaseName = 'plain' | 'plainSized' | 'mux' | 'filtered' | 'plainMany' | 'muxMany';

/** One case: how its trial differs from a plain fan-out, and what it is measured against. */
interface Case {
  readonly name: CaseName;
  readonly label: string;
  readonly perSocket: string;
  readonly baseline?: CaseName;
  /** The target's name and its least ratio to the baseline (reported, never asserted). */
  readonly target?: string;
  readonly goal?: number;
  /** What differs from {@link SIZE} bytes to {@link CLIENTS} plain clients on the schema channel. */
  readonly trial: (target: Target, rig: Rig) => Partial<TrialSpec>;
}

// Notifications per trial: about 3,000,000 frames at 1,000 clients, 600,000 through one socket.
const fanoutCount = (quick: boolean) => (quick ? 200 : 3000);
const manyCount = (quick: boolean) => (quick ? 150_000 : 600_000);
const notifications = (quick: boolean, name: CaseName) =>
  name === 'filtered' ? fanoutCount(quick) * FILTERS : name.endsWith('Many') ? manyCount(quick) : fanoutCount(quick);

const CASES: readonly Case[] = [
  { name: 'plain', label: 'plain, /bench_schema', perSocket: '1 channel', trial: () => ({}) },
  {
    name: 'plainSized',
    label: `plain, ${bytes(SIZE + ENVELOPE)} payloads`,
    perSocket: '1 channel',
    baseline: 'plain',
    trial: () => ({ size: SIZE + ENVELOPE }),
  },
  {
    name: 'mux',
    label: 'multiplexed, no filter',
    perSocket: '1 channel',
    baseline: 'plain',
    goal: 0.9,
    target: `${num(CLIENTS)} clients, multiplexed ≥ 0.9 × plain, nothing lost or reordered, ${bytes(SIZE)}`,
    trial: (target, rig) => ({
      urls: target.rootUrls(rig.addresses),
      connect: { subscribe: { channels: [SCHEMA_CHANNEL], filterField: undefined } },
    }),
  },
  {
    name: 'filtered',
    label: `multiplexed, ${FILTERS} filters`,
    perSocket: `1 channel, {"k":{"eq":i % ${FILTERS}}}`,
    baseline: 'mux',
    goal: 0.8,
    target: `${num(CLIENTS)} clients over ${FILTERS} filters ≥ 0.8 × unfiltered multiplexed, frames delivered/s, ${bytes(SIZE)}`,
    trial: (target, rig) => ({
      channel: KEYED_CHANNEL,
      urls: target.rootUrls(rig.addresses),
      connect: { subscribe: { channels: [KEYED_CHANNEL], filterField: 'k' }, modulus: FILTERS },
      spread: { keys: FILTERS },
      // Each client gets one notification in ten: the same bytes of its own frames ahead as unfiltered.
      windowBytes: rig.windowBytes * FILTERS,
    }),
  },
  {
    name: 'plainMany',
    label: `${CHANNELS} plain sockets`,
    perSocket: '1 channel',
    trial: (target, rig) => ({
      channel: MANY_PREFIX,
      clients: CHANNELS,
      // Socket i on channel i, the addresses taking turns.
      urls: manyChannels.map((channel, i) => target.urls(channel, rig.addresses)[i % rig.addresses] ?? ''),
      spread: { channels: CHANNELS },
      connect: { generators: 1, modulus: CHANNELS },
    }),
  },
  {
    name: 'muxMany',
    label: '1 multiplexed socket',
    perSocket: `${CHANNELS} channels`,
    baseline: 'plainMany',
    goal: 0.9,
    target: `1 socket × ${CHANNELS} channels ≥ 0.9 × ${CHANNELS} plain sockets, nothing lost or reordered, ${bytes(SIZE)}`,
    trial: (target) => ({
      channel: MANY_PREFIX,
      clients: 1,
      urls: target.rootUrls(1),
      spread: { channels: CHANNELS },
      connect: { generators: 1, subscribe: { channels: manyChannels, filterField: undefined } },
    }),
  },
];

/** One case's runs. */
type Row = s.Runs & { readonly c: Case };

/** Runs the cases in turns on one server of ours, stopped before the replay starts its own. */
async function measure(context: s.Context, repetitions: number): Promise<Row[]> {
  const { rig, say } = context;
  const toml = [KEYED_CHANNEL, ...manyChannels].map((name) =>
    schemaChannelToml(name, { keyed: name === KEYED_CHANNEL }),
  );
  await using target = await s.startOursFor(context, { toml: toml.join('\n') });
  const results = await s.inTurns(CASES, repetitions, (c, round) => {
    const spec: TrialSpec = {
      label: c.label,
      target,
      channel: SCHEMA_CHANNEL,
      clients: CLIENTS,
      size: SIZE,
      send: { kind: 'burst', count: notifications(context.quick, c.name) },
      ...c.trial(target, rig),
    };
    say(`multiplexed: ${c.label}, ${num(spec.clients)} × ${c.perSocket}, run ${round}/${repetitions}`);
    return runTrial(rig, spec);
  });
  return CASES.flatMap((c, i): Row[] => {
    const runs = s.runsOf(results[i] ?? []);
    return runs === undefined ? [] : [{ ...runs, c }];
  });
}

/** Runs the multiplexed scenario: the fan-out cases on one server, then the replay on its own. */
export async function multiplexed(context: s.Context): Promise<s.Outcome> {
  const repetitions = context.quick ? 1 : 3;
  const rows = await measure(context, repetitions);
  const base = (row: Row) => rows.find((x) => x.c.name === row.c.baseline);
  const replayed = await replay(context);
  return {
    sections: [fanoutSection(rows, base, repetitions, context.quick), ...replayed.sections],
    targets: [...fanoutTargets(rows, base), ...replayed.targets],
  };
}

function fanoutSection(rows: readonly Row[], base: (row: Row) => Row | undefined, repetitions: number, quick: boolean) {
  const columns: Column<Row>[] = [
    ['case', ({ c }) => c.label],
    ['sockets', ({ r }) => num(r.clients)],
    ['per socket', ({ c }) => c.perSocket],
    ['payload', ({ r }) => bytes(r.size)],
    ['notifications', ({ r }) => num(r.sent)],
    ...s.INTEGRITY,
    ['seq breaks', ({ r }) => num(r.seqBreaks)],
    ...s.RATE,
    [
      'baseline frames/s',
      (row) => (base(row) === undefined ? '' : `${base(row)?.c.label}: ${num(base(row)?.r.framesPerSecond)}`),
    ],
    [
      '× baseline',
      (row) => (base(row) === undefined ? '' : times(ratio(row.r.framesPerSecond, base(row)?.r.framesPerSecond))),
    ],
    ['goal', ({ c }) => (c.goal === undefined ? '' : `≥ ${c.goal}`)],
    ['srv ns / frame', ({ r }) => num(s.perFrameNs(r.cpu.seconds.server, r))],
    ['gen ns / frame', ({ r }) => num(s.perFrameNs(r.cpu.seconds.generators, r))],
    ...s.TAIL,
  ];
  const fanout = fanoutCount(quick);
  return section('Multiplexed (pgws.v1) beside plain mode, as fast as possible', columns, rows, [
    `${s.medianOf(repetitions)}, the ${CASES.length} cases taking turns on one server process (limits at defaults; every channel has the benchmark schema). frames/s = frames received by all clients ÷ (last receive − first send), as in the fan-out table. A multiplexed client opens \`ws://127.0.0.x:PORT/\` offering \`pgws.v1\`, waits for \`ready\`, subscribes, and counts \`message\` frames; besides the payload checks (lost, dup, reord), "seq breaks" counts frames whose server \`seq\` is not the previous one + 1 on their channel (with a filter: not above it). ns / frame = CPU time of the server (srv) or of the generator processes (gen) over the send-and-drain phase ÷ frames received: where the machine's time went, which the frames/s ratio alone cannot say while the generators are the bottleneck.`,
    `Plain with ${bytes(SIZE + ENVELOPE)} payloads sends frames as large as the multiplexed ones (the ${bytes(SIZE)} payload in its ${ENVELOPE}-byte envelope): multiplexed beside it is the protocol's cost, beside plain at ${bytes(SIZE)} the envelope's too. The generators are the bottleneck, so larger frames cost frames/s even where the server's ns / frame does not move.`,
    'G = floor(SEQ / 4): the 4 notifications of a group come one from each producer connection, so every channel and every filter takes from all of them (bench/notifier.ts).',
    `Filters: the keyed channel's payloads carry \`"k": G % ${FILTERS}\` and client i subscribes with \`{"k":{"eq":i % ${FILTERS}}}\`, so each client receives one notification in ${FILTERS}. Normalised by frames delivered: the filtered case sends ${FILTERS}× the notifications (${num(fanout * FILTERS)} vs ${num(fanout)}) so both deliver ${num(fanout * CLIENTS)} frames, and its credit window is ${FILTERS}× larger so each client still has at most 512 KiB of its own frames ahead.`,
    `${CHANNELS} channels: notification SEQ goes to \`${MANY_PREFIX}{G % ${CHANNELS}}\`; the one multiplexed socket subscribes to all ${CHANNELS} (the default max_subscriptions), the ${CHANNELS} plain sockets each open one. Both sides sit in one generator process, as they would in one browser, and have the same notifications in flight (512 KiB).`,
    ...new Set(rows.flatMap((row) => s.runNotes(row.c.label, row.runs))),
  ]);
}

function fanoutTargets(rows: readonly Row[], base: (row: Row) => Row | undefined): TargetCheck[] {
  return rows.flatMap((row) => {
    const baseline = base(row);
    const { target, goal } = row.c;
    if (target === undefined || goal === undefined || baseline === undefined) return [];
    // "Nothing lost or reordered" holds for every run of both sides, not just the median one.
    const runs = [...row.runs, ...baseline.runs];
    const measured = `${num(row.r.framesPerSecond)} vs ${num(baseline.r.framesPerSecond)} frames/s; ${s.faults(runs)}`;
    const ratioOf = ratio(row.r.framesPerSecond, baseline.r.framesPerSecond);
    return [check(target, measured, ratioOf, { min: goal }, runs.every(s.clean))];
  });
}
