/**
 * One measured trial: connect the clients, arm them, send (a burst or a fixed rate), wait until every
 * open client has everything or progress stops, read CPU and memory, collect the reports, close.
 */
import type { BenchDatabase } from './database.ts';
import { createHistogram, decodeHistogram, maxLatencyMs, quantileMs } from './histogram.ts';
import type { Notifier, NotifyFunction, Sent, Spread } from './notifier.ts';
import type { ConnectResult, ConnectSpec, Pool } from './pool.ts';
import { cpuMeter, machineTimes } from './procstat.ts';
import type { Target } from './servers.ts';
import type { GeneratorReport } from './tracker.ts';

/** What to run; without a `target`, raw LISTEN clients straight on the database. */
export interface TrialSpec {
  readonly label: string;
  readonly target: Target | undefined;
  readonly channel: string;
  readonly clients: number;
  readonly size: number;
  readonly via?: NotifyFunction;
  readonly send:
    | { readonly kind: 'burst'; readonly count: number }
    | { readonly kind: 'paced'; readonly count: number; readonly rate: number };
  /** Instead of the target's URLs of `channel`. */
  readonly urls?: readonly string[];
  readonly spread?: Spread;
  /** Instead of the rig's credit window. */
  readonly windowBytes?: number;
  /** How the clients connect beyond the defaults; with `subscribe`, multiplexed. */
  readonly connect?: Omit<ConnectSpec, 'kind' | 'urls' | 'channel' | 'count'>;
  /** At the trial's turns (for the delivery window): connected and idle (awaited), sending, drained. */
  readonly hooks?: {
    readonly idle?: () => Promise<void>;
    readonly sending?: () => void;
    readonly drained?: () => void;
  };
}

/** The shared machinery a trial runs on. */
export interface Rig {
  readonly db: BenchDatabase;
  readonly pool: Pool;
  readonly notifier: Notifier;
  /** Destination addresses 127.0.0.1..N the clients spread over. */
  readonly addresses: number;
  /** Bytes of notifications allowed ahead of the slowest client. */
  readonly windowBytes: number;
}

/** Everything one trial measured. */
export type TrialResult = ReturnType<typeof summarize>;

let runs = 0;
const DRAIN_MS = 3000;
const QUIET_CHECK_MS = 500;
const SEND_DEADLINE_MS = 120_000;

/** CPU % of one core from now to the reading, per group; `other` is the machine's busy time outside them. */
function cpuPhase(rig: Rig, target: Target | undefined) {
  const server = cpuMeter(() => target?.processes() ?? []);
  const postgres = cpuMeter(() => rig.db.processes());
  const generators = cpuMeter(() => rig.pool.pids);
  const notifier = cpuMeter(() => [process.pid]);
  const machineStart = machineTimes().busy;
  const wallStart = performance.now();
  return () => {
    const cpu = { server: server(), postgres: postgres(), generators: generators(), notifier: notifier() };
    const machine = ((machineTimes().busy - machineStart) / ((performance.now() - wallStart) / 1000)) * 100;
    const ours = Object.values(cpu).reduce((sum, reading) => sum + reading.percent, 0);
    return {
      server: cpu.server.percent,
      postgres: cpu.postgres.percent,
      generators: cpu.generators.percent,
      notifier: cpu.notifier.percent,
      other: Math.max(0, machine - ours),
      seconds: { server: cpu.server.seconds, generators: cpu.generators.seconds },
    };
  };
}

/** Runs one trial; the clients are closed again whatever happens. */
export async function runTrial(rig: Rig, spec: TrialSpec): Promise<TrialResult> {
  const { pool, notifier, db } = rig;
  const rssEmptyKb = spec.target?.rssKb() ?? 0;
  const windowBytes = spec.windowBytes ?? rig.windowBytes;
  try {
    const connect = await pool.connect({
      kind: spec.target === undefined ? 'pg' : spec.connect?.subscribe !== undefined ? 'mux' : 'ws',
      urls: spec.urls ?? spec.target?.urls(spec.channel, rig.addresses) ?? [db.url],
      channel: spec.channel,
      count: spec.clients,
      ...spec.connect,
    });
    await Bun.sleep(250);
    const rssIdleKb = spec.target?.rssKb() ?? 0;
    await spec.hooks?.idle?.();
    const run = ++runs;
    const { count } = spec.send;
    const paced = spec.send.kind === 'paced';
    const step = paced ? count : notifier.step(spec.size, windowBytes);
    await pool.arm({ run, expected: count, producers: paced ? 1 : notifier.producers, step });
    const cpu = cpuPhase(rig, spec.target);
    spec.hooks?.sending?.();
    const base = { channel: spec.channel, run, count, size: spec.size, via: spec.via, ...spec.spread };
    const sent: Sent =
      spec.send.kind === 'paced'
        ? await notifier.paced({ ...base, rate: spec.send.rate })
        : await notifier.burst({ ...base, windowBytes, credit: pool, deadlineMs: SEND_DEADLINE_MS });
    await drain(pool, sent.sent, connect.opened);
    spec.hooks?.drained?.();
    const measured = { connect, cpu: cpu(), rssEmptyKb, rssIdleKb, rssAfterKb: spec.target?.rssKb() ?? 0 };
    const reports = await pool.report();
    const troubled = connect.failed > 0 || reports.some((r) => Object.keys(r.closes).some((code) => code !== '1000'));
    const diagnosis = troubled ? ((await spec.target?.diagnose()) ?? '') : '';
    return summarize(spec, reports, sent, { ...measured, diagnosis });
  } finally {
    await pool.close();
  }
}

/**
 * Waits until every open client has all `sent`, or nothing arrives for DRAIN_MS. A credit step can take
 * longer than that on a loaded machine (1,310 notifications × 1,000 clients at 100 B), so while credit
 * is quiet the frames received so far say whether anything still moves.
 */
async function drain(pool: Pool, sent: number, opened: number) {
  let last = pool.progress();
  let frames = -1;
  let movedAt = performance.now();
  const until = movedAt + SEND_DEADLINE_MS;
  while (last < sent && opened > 0 && performance.now() - movedAt < DRAIN_MS && performance.now() < until) {
    await pool.nextProgress(QUIET_CHECK_MS);
    const received = pool.progress() === last ? await pool.received() : frames;
    // Progress that came in while the count was asked for would otherwise wait out QUIET_CHECK_MS.
    const latest = pool.progress();
    if (latest !== last || received !== frames) movedAt = performance.now();
    last = latest;
    frames = received;
  }
}

function summarize(
  spec: TrialSpec,
  reports: readonly GeneratorReport[],
  sent: Sent,
  measured: {
    connect: ConnectResult;
    cpu: ReturnType<ReturnType<typeof cpuPhase>>;
    /** Server RSS (kB, its processes) before connecting, with the clients idle, after sending. */
    rssEmptyKb: number;
    rssIdleKb: number;
    rssAfterKb: number;
    /** The server's own account when something went wrong (refusals, closes, its log). */
    diagnosis: string;
  },
) {
  const sum = (pick: (r: GeneratorReport) => number) => reports.reduce((n, r) => n + pick(r), 0);
  const latency = createHistogram();
  const closes: Record<string, number> = {};
  for (const report of reports) {
    latency.add(decodeHistogram(report.latency));
    for (const [code, n] of Object.entries(report.closes)) closes[code] = (closes[code] ?? 0) + n;
  }
  const received = sum((r) => r.unique);
  // Each client's share of the planned notifications; a send cut short by its deadline scales it.
  const wanted = sum((r) => r.expected);
  const expected = sent.sent === spec.send.count ? wanted : Math.round((wanted * sent.sent) / spec.send.count);
  const lastReceive = Math.max(0, ...reports.map((r) => r.lastReceiveMs));
  const durationMs = lastReceive > 0 ? lastReceive - sent.firstSendMs : 0;
  const { connect, ...rest } = measured;
  return {
    label: spec.label,
    clients: spec.clients,
    size: spec.size,
    connected: connect.opened,
    connectFailures: connect.failed,
    firstError: connect.firstError,
    connectMs: connect.ms,
    refused: connect.refused,
    retried: connect.retried,
    planned: spec.send.count,
    sent: sent.sent,
    /** Frames all clients together should receive (each its share of what was sent). */
    expected,
    received,
    lost: expected - received,
    incomplete: sum((r) => r.incomplete),
    duplicated: sum((r) => r.duplicated),
    reordered: sum((r) => r.reordered),
    stray: sum((r) => r.stray),
    firstStray: reports.find((r) => r.firstStray !== undefined)?.firstStray,
    seqBreaks: sum((r) => r.seqBreaks),
    closes,
    openLoop: sent.openLoop,
    durationMs,
    framesPerSecond: durationMs > 0 ? received / (durationMs / 1000) : 0,
    p50Ms: quantileMs(latency, 0.5),
    p99Ms: quantileMs(latency, 0.99),
    maxMs: maxLatencyMs(latency),
    latency,
    ...rest,
  };
}
