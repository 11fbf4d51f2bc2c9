/**
 * The multiplexed protocol (`pgws.v1`, one socket on `/`, subscriptions in frames) beside plain mode
 * (`/<channel>`) on the same server process, every figure with its baseline from the same run:
 * - fan-out to 1,000 clients on the schema channel, multiplexed vs plain (target ≥ 0.9×), and plain
 *   with payloads as large as a multiplexed frame, to tell the envelope's bytes from the protocol;
 * - the same 1,000 multiplexed clients spread over 10 filters of a keyed schema channel vs unfiltered
 *   multiplexed, in frames delivered per second (≥ 0.8×);
 * - one multiplexed socket subscribed to 100 channels vs 100 plain sockets, one per channel, both in
 *   one generator process (≥ 0.9×);
 * and, on a server of its own, the replay of a full 10,000-message history (bench/replay.ts).
 *
 * The cases take turns round by round (3 rounds in a full run) and each row is the median round.
 */
import { replay } from './replay.ts';
import {
  anomalies,
  bytes,
  type Context,
  clean,
  INTEGRITY_HEADERS,
  integrityCells,
  median,
  type Outcome,
  spread,
  TAIL_HEADERS,
  tailCells,
} from './scenario.ts';
import { SCHEMA_CHANNEL, schemaChannelToml, startOurs } from './servers.ts';
import { check, num, ratio, type TargetCheck, times } from './stats.ts';
import type { Target } from './target.ts';
import { runTrial, type TrialResult, type TrialSpec } from './trial.ts';

const SIZE = 100;
const CLIENTS = 1000;
const FILTERS = 10;
const CHANNELS = 100;
const KEYED_CHANNEL = 'bench_keyed';
// Channels bench_many_0..99, the notifications round-robin over them in groups of one per producer
// connection (bench/notifier.ts `Spread`).
const MANY_PREFIX = 'bench_many_';

type CaseName = 'plain' | 'plainSized' | 'mux' | 'filtered' | 'plainMany' | 'muxMany';

/** One case: how its trial is built, and what it is measured against. */
interface Case {
  readonly name: CaseName;
  readonly label: string;
  readonly clients: number;
  readonly perSocket: string;
  readonly baseline: CaseName | undefined;
  /** The target against the baseline (reported, never asserted). */
  readonly goal?: { readonly min: number; readonly name: string };
  readonly spec: (target: Target, context: Context) => TrialSpec;
}

// A multiplexed frame is the payload in an envelope: {"type":"message","channel":"bench_schema","seq":N,"payload":…}
// is 65 bytes around it with a 4-digit N. Plain frames that large tell the frame's size from the protocol.
const ENVELOPE = 65;

const manyChannels = Array.from({ length: CHANNELS }, (_, i) => `${MANY_PREFIX}${i}`);

/** Notifications per trial: about 3,000,000 frames at 1,000 clients, 600,000 through one socket. */
function notifications(quick: boolean, name: CaseName): number {
  const fanout = quick ? 200 : 3000;
  if (name === 'filtered') return fanout * FILTERS;
  if (name === 'plainMany' || name === 'muxMany') return quick ? 150_000 : 600_000;
  return fanout;
}

const CASES: readonly Case[] = [
  {
    name: 'plain',
    label: 'plain, /bench_schema',
    clients: CLIENTS,
    perSocket: '1 channel',
    baseline: undefined,
    spec: (target, context) => ({
      label: 'plain',
      target,
      channel: SCHEMA_CHANNEL,
      clients: CLIENTS,
      size: SIZE,
      send: { kind: 'burst', count: notifications(context.quick, 'plain') },
    }),
  },
  {
    name: 'plainSized',
    label: `plain, ${bytes(SIZE + ENVELOPE)} payloads`,
    clients: CLIENTS,
    perSocket: '1 channel',
    baseline: 'plain',
    spec: (target, context) => ({
      label: 'plain, multiplexed frame size',
      target,
      channel: SCHEMA_CHANNEL,
      clients: CLIENTS,
      size: SIZE + ENVELOPE,
      send: { kind: 'burst', count: notifications(context.quick, 'plainSized') },
    }),
  },
  {
    name: 'mux',
    label: 'multiplexed, no filter',
    clients: CLIENTS,
    perSocket: '1 channel',
    baseline: 'plain',
    goal: {
      min: 0.9,
      name: `${num(CLIENTS)} clients, multiplexed ≥ 0.9 × plain, nothing lost or reordered, ${bytes(SIZE)}`,
    },
    spec: (target, context) => ({
      label: 'multiplexed',
      target,
      channel: SCHEMA_CHANNEL,
      clients: CLIENTS,
      size: SIZE,
      send: { kind: 'burst', count: notifications(context.quick, 'mux') },
      urls: target.rootUrls(context.rig.addresses),
      mux: { channels: [SCHEMA_CHANNEL], filterField: undefined },
    }),
  },
  {
    name: 'filtered',
    label: `multiplexed, ${FILTERS} filters`,
    clients: CLIENTS,
    perSocket: `1 channel, {"k":{"eq":i % ${FILTERS}}}`,
    baseline: 'mux',
    goal: {
      min: 0.8,
      name: `${num(CLIENTS)} clients over ${FILTERS} filters ≥ 0.8 × unfiltered multiplexed, frames delivered/s, ${bytes(SIZE)}`,
    },
    spec: (target, context) => ({
      label: `multiplexed, ${FILTERS} filters`,
      target,
      channel: KEYED_CHANNEL,
      clients: CLIENTS,
      size: SIZE,
      send: { kind: 'burst', count: notifications(context.quick, 'filtered') },
      urls: target.rootUrls(context.rig.addresses),
      mux: { channels: [KEYED_CHANNEL], filterField: 'k' },
      modulus: FILTERS,
      spread: { keys: FILTERS },
      // Each client gets one notification in ten: the same bytes of its own frames ahead as unfiltered.
      windowBytes: context.rig.windowBytes * FILTERS,
    }),
  },
  {
    name: 'plainMany',
    label: `${CHANNELS} plain sockets`,
    clients: CHANNELS,
    perSocket: '1 channel',
    baseline: undefined,
    spec: (target, context) => ({
      label: `${CHANNELS} plain sockets`,
      target,
      channel: MANY_PREFIX,
      clients: CHANNELS,
      size: SIZE,
      send: { kind: 'burst', count: notifications(context.quick, 'plainMany') },
      // Socket i on channel i, the addresses taking turns.
      urls: manyChannels.map((channel, i) => target.urls(channel, context.rig.addresses)[i % context.rig.addresses]!),
      modulus: CHANNELS,
      spread: { channels: CHANNELS },
      generators: 1,
    }),
  },
  {
    name: 'muxMany',
    label: `1 multiplexed socket`,
    clients: 1,
    perSocket: `${CHANNELS} channels`,
    baseline: 'plainMany',
    goal: {
      min: 0.9,
      name: `1 socket × ${CHANNELS} channels ≥ 0.9 × ${CHANNELS} plain sockets, nothing lost or reordered, ${bytes(SIZE)}`,
    },
    spec: (target, context) => ({
      label: '1 multiplexed socket',
      target,
      channel: MANY_PREFIX,
      clients: 1,
      size: SIZE,
      send: { kind: 'burst', count: notifications(context.quick, 'muxMany') },
      urls: target.rootUrls(1),
      mux: { channels: manyChannels, filterField: undefined },
      spread: { channels: CHANNELS },
      generators: 1,
    }),
  },
];

/** Runs the multiplexed scenario: the fan-out cases on one server, then the replay on its own. */
export async function multiplexed(context: Context): Promise<Outcome> {
  const { rig, say } = context;
  const repetitions = context.quick ? 1 : 3;
  const results = new Map<CaseName, TrialResult[]>(CASES.map((c) => [c.name, []]));
  const channelsToml = [
    schemaChannelToml(KEYED_CHANNEL, { keyed: true }),
    ...manyChannels.map((channel) => schemaChannelToml(channel)),
  ].join('\n');
  const target = await startOurs({ databaseUrl: rig.db.url, profileDir: context.profileDir, channelsToml });
  try {
    for (let round = 1; round <= repetitions; round++) {
      for (const c of CASES) {
        say(`multiplexed: ${c.label}, ${num(c.clients)} × ${c.perSocket}, run ${round}/${repetitions}`);
        results.get(c.name)?.push(await runTrial(rig, c.spec(target, context)));
      }
    }
  } finally {
    await target.stop();
  }
  const replayed = await replay(context);
  const all = (name: CaseName) => results.get(name) ?? [];
  const pick = (name: CaseName) => median(all(name));
  return {
    sections: [fanoutSection(pick, all, repetitions, context.quick), ...replayed.sections],
    targets: [...fanoutTargets(pick, all), ...replayed.targets],
  };
}

type Pick = (name: CaseName) => TrialResult | undefined;

/** CPU time per frame received, in ns: what the server (or the generators) spent on each. */
const perFrameNs = (seconds: number, r: TrialResult) => (r.received > 0 ? (seconds * 1e9) / r.received : undefined);
type All = (name: CaseName) => readonly TrialResult[];

function fanoutSection(pick: Pick, all: All, repetitions: number, quick: boolean): Outcome['sections'][number] {
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const c of CASES) {
    const r = pick(c.name);
    if (r === undefined) continue;
    const base = c.baseline === undefined ? undefined : pick(c.baseline);
    rows.push([
      c.label,
      num(c.clients),
      c.perSocket,
      bytes(r.size),
      num(r.sent),
      ...integrityCells(r),
      num(r.seqBreaks),
      num(r.framesPerSecond),
      spread(all(c.name)),
      base === undefined ? '' : `${CASES.find((x) => x.name === c.baseline)?.label}: ${num(base.framesPerSecond)}`,
      base === undefined ? '' : times(ratio(r.framesPerSecond, base.framesPerSecond)),
      c.goal === undefined ? '' : `≥ ${c.goal.min}`,
      num(perFrameNs(r.cpu.seconds.server, r)),
      num(perFrameNs(r.cpu.seconds.generators, r)),
      ...tailCells(r),
    ]);
    for (const [i, each] of all(c.name).entries()) notes.push(...anomalies(each, `${c.label}, run ${i + 1}`));
  }
  const fanout = notifications(quick, 'mux');
  return {
    title: `Multiplexed (pgws.v1) beside plain mode, as fast as possible`,
    headers: [
      'case',
      'sockets',
      'per socket',
      'payload',
      'notifications',
      ...INTEGRITY_HEADERS,
      'seq breaks',
      'frames/s',
      'range of runs',
      'baseline frames/s',
      '× baseline',
      'goal',
      'srv ns / frame',
      'gen ns / frame',
      ...TAIL_HEADERS,
    ],
    rows,
    notes: [
      `Median of ${repetitions} run${repetitions === 1 ? '' : 's'} by frames/s, the ${CASES.length} cases taking turns on one server process (limits at defaults; every channel has the benchmark schema). frames/s = frames received by all clients ÷ (last receive − first send), as in the fan-out table. A multiplexed client opens \`ws://127.0.0.x:PORT/\` offering \`pgws.v1\`, waits for \`ready\`, subscribes, and counts \`message\` frames; besides the payload checks (lost, dup, reord), "seq breaks" counts frames whose server \`seq\` is not the previous one + 1 on their channel (with a filter: not above it). ns / frame = CPU time of the server (srv) or of the generator processes (gen) over the send-and-drain phase ÷ frames received: where the machine's time went, which the frames/s ratio alone cannot say while the generators are the bottleneck.`,
      `Plain with ${bytes(SIZE + ENVELOPE)} payloads sends frames as large as the multiplexed ones (the ${bytes(SIZE)} payload in its ${ENVELOPE}-byte envelope): multiplexed beside it is the protocol's cost, beside plain at ${bytes(SIZE)} the envelope's too. The generators are the bottleneck, so larger frames cost frames/s even where the server's ns / frame does not move.`,
      `G = floor(SEQ / 4): the 4 notifications of a group come one from each producer connection, so every channel and every filter takes from all of them (bench/notifier.ts).`,
      `Filters: the keyed channel's payloads carry \`"k": G % ${FILTERS}\` and client i subscribes with \`{"k":{"eq":i % ${FILTERS}}}\`, so each client receives one notification in ${FILTERS}. Normalised by frames delivered: the filtered case sends ${FILTERS}× the notifications (${num(fanout * FILTERS)} vs ${num(fanout)}) so both deliver ${num(fanout * CLIENTS)} frames, and its credit window is ${FILTERS}× larger so each client still has at most 512 KiB of its own frames ahead.`,
      `${CHANNELS} channels: notification SEQ goes to \`${MANY_PREFIX}{G % ${CHANNELS}}\`; the one multiplexed socket subscribes to all ${CHANNELS} (the default max_subscriptions), the ${CHANNELS} plain sockets each open one. Both sides sit in one generator process, as they would in one browser, and have the same notifications in flight (512 KiB).`,
      ...new Set(notes),
    ],
  };
}

function fanoutTargets(pick: Pick, all: All): TargetCheck[] {
  const targets: TargetCheck[] = [];
  for (const c of CASES) {
    const goal = c.goal;
    if (goal === undefined || c.baseline === undefined) continue;
    const r = pick(c.name);
    const base = pick(c.baseline);
    // "Nothing lost or reordered" holds for every run of both sides, not just the median one.
    const runs = [...all(c.name), ...all(c.baseline)];
    const faults = (f: (x: TrialResult) => number) => num(runs.reduce((n, x) => n + f(x), 0));
    const measured = `${num(r?.framesPerSecond)} vs ${num(base?.framesPerSecond)} frames/s; lost ${faults((x) => x.lost)}, dup ${faults((x) => x.duplicated)}, reordered ${faults((x) => x.reordered)}, seq breaks ${faults((x) => x.seqBreaks)} over ${runs.length} runs`;
    const ok = runs.length > 0 && runs.every(clean);
    targets.push(check(goal.name, measured, ratio(r?.framesPerSecond, base?.framesPerSecond), { min: goal.min }, ok));
  }
  return targets;
}
