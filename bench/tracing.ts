/**
 * What tracing costs (issue 23, `--only tracing`): fan-out to 1,000 plain clients, 100 B payloads on a schema
 * channel, by ours with tracing off, ours with tracing on (every span exported over OTLP/HTTP, http/protobuf, to
 * a receiver this process runs on 127.0.0.1) and the bare bridge, taking turns round by round. The one-off
 * comparison with the code before tracing (a git worktree of the merge base) is recorded in the README.
 */
import { bytes, type Column, check, count, num, ratio, section, times } from './report.ts';
import * as s from './scenario.ts';
import { schemaChannelToml, startBare } from './servers.ts';
import { runTrial, type TrialResult } from './trial.ts';

const CLIENTS = 1000;
const SIZE = 100;
const VARIANTS = ['bare', 'off', 'on'] as const;
type Variant = (typeof VARIANTS)[number];
const LABELS: Readonly<Record<Variant, string>> = {
  bare: 'bare',
  off: 'ours, tracing off',
  on: 'ours, tracing on, OTLP to 127.0.0.1',
};
// One channel each: both of ours share the database, and a server must not trace the other's notifications.
const channel = (variant: Variant) => `bench_trace_${variant}`;

/**
 * The server's CPU time per frame received over all runs (the median of the runs' ratios would drop the
 * figure of the most disturbed run instead of weighting it by its frames). On a machine shared with other
 * work this moves less than frames/s, which falls whenever another process takes a core.
 */
const cpuPerFrame = (runs: readonly TrialResult[]) => {
  const frames = runs.reduce((sum, r) => sum + r.received, 0);
  return frames === 0 ? undefined : (runs.reduce((sum, r) => sum + r.cpu.seconds.server, 0) * 1e6) / frames;
};

/** Runs the tracing scenario. */
export async function tracing(context: s.Context): Promise<s.Outcome> {
  const { rig, say } = context;
  // Five rounds, not three: what tracing off may cost is a few %, and on two shared cores one run is off by more.
  const rounds = context.quick ? 1 : 5;
  const notifications = context.quick ? 200 : 3000;
  // What a collector answers; only what it was sent is counted.
  const received = { requests: 0, bytes: 0 };
  using receiver = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      received.requests += 1;
      received.bytes += (await request.arrayBuffer()).byteLength;
      return new Response(null, { headers: { 'content-type': 'application/x-protobuf' } });
    },
  });
  const ours = (variant: 'off' | 'on', env: Record<string, string> = {}) =>
    s.startOursFor(context, { label: LABELS[variant], toml: schemaChannelToml(channel(variant)), env });
  await using bare = await startBare(rig.db.url);
  await using off = await ours('off');
  await using on = await ours('on', { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}` });
  const targets = { bare, off, on };
  // Round 1 warms every server (and the exporter) up and is not reported.
  const results = await s.inTurns(VARIANTS, rounds + 1, (variant, round) => {
    const run = round === 1 ? 'warm-up' : `run ${round - 1}/${rounds}`;
    say(`tracing: ${LABELS[variant]}, ${count(CLIENTS, 'client')}, ${bytes(SIZE)}, ${run}`);
    const send = { kind: 'burst', count: round === 1 ? 100 : notifications } as const;
    const spec = { label: LABELS[variant], target: targets[variant], channel: channel(variant), send };
    return runTrial(rig, { ...spec, clients: CLIENTS, size: SIZE });
  });
  // Its last spans are exported at shutdown: stopped now, they are counted too.
  await on.stop();
  const rows = VARIANTS.flatMap((variant, i) => {
    const runs = s.runsOf(results[i]?.slice(1) ?? []);
    return runs === undefined ? [] : [{ ...runs, variant }];
  });
  const find = (variant: Variant) => rows.find((row) => row.variant === variant);
  const rate = (variant: Variant) => find(variant)?.r.framesPerSecond;
  const cpu = (variant: Variant) => cpuPerFrame(find(variant)?.runs ?? []);
  // Bare has no tracing to turn off.
  const vsOff = (variant: Variant, figure: (v: Variant) => number | undefined) =>
    times(variant === 'bare' ? undefined : ratio(figure(variant), figure('off')));
  const columns: Column<(typeof rows)[number]>[] = [
    ['server', ({ variant }) => LABELS[variant]],
    ...s.INTEGRITY,
    ...s.RATE,
    ['× bare', ({ r }) => times(ratio(r.framesPerSecond, rate('bare')))],
    ['× tracing off', ({ variant }) => vsOff(variant, rate)],
    ['srv CPU µs/frame', ({ variant }) => num(cpu(variant), 3)],
    ['CPU × tracing off', ({ variant }) => vsOff(variant, cpu)],
    ...s.TAIL,
  ];
  const notes = rows.flatMap((row) => s.runNotes(LABELS[row.variant], row.runs));
  const offRuns = find('off')?.runs ?? [];
  return {
    sections: [
      section(`Tracing: fan-out, ${num(CLIENTS)} clients, ${bytes(SIZE)}, schema channel`, columns, rows, [
        `${s.medianOf(rounds)}, the three servers taking turns after a warm-up round that is not reported. srv CPU µs/frame is the server's CPU time over all runs ÷ the frames they delivered. Tracing on exported ${num(received.requests)} OTLP requests, ${num(received.bytes / 1024)} KiB, to the receiver.`,
        ...new Set(notes),
      ]),
    ],
    targets: [
      check(
        `${LABELS.off}, every feature on ≥ 0.9 × bare, nothing lost or reordered, ${num(CLIENTS)} clients, ${bytes(SIZE)}`,
        `${num(rate('off'))} vs ${num(rate('bare'))} frames/s; ${s.faults(offRuns)}`,
        ratio(rate('off'), rate('bare')),
        { min: 0.9 },
        offRuns.length > 0 && offRuns.every(s.clean),
      ),
      // Tracing on has no goal (issue 23: "report the ratio"); it stands here for the record.
      check(
        `${LABELS.on} × tracing off, ${num(CLIENTS)} clients, ${bytes(SIZE)}`,
        `${num(rate('on'))} vs ${num(rate('off'))} frames/s; server CPU ${num(cpu('on'), 3)} vs ${num(cpu('off'), 3)} µs/frame`,
        ratio(rate('on'), rate('off')),
        { min: 0 },
      ),
    ],
  };
}
