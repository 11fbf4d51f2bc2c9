/**
 * One measured trial: connect the clients, arm the generators, send (a burst or a fixed-rate stream),
 * wait until every open client has everything (or progress stops), read CPU and memory, collect the
 * per-client reports, close the clients. Every wait is bounded.
 */
import type { BenchDatabase } from './database.ts';
import { createHistogram, decodeHistogram, type Histogram, maxLatencyMs, quantileMs } from './histogram.ts';
import type { Notifier, NotifyFunction, Sent, Spread } from './notifier.ts';
import type { ConnectResult, ConnectSpec, GeneratorReport, MuxSubscribe, Pool } from './pool.ts';
import { cpuMeter, machineTimes } from './procstat.ts';
import type { Target } from './servers.ts';

/**
 * What to run. `target` undefined means raw LISTEN clients straight on the database. The optional rest
 * is for the multiplexed cases (bench/multiplexed.ts); left out, a trial is what it always was.
 */
export interface TrialSpec {
  readonly label: string;
  readonly target: Target | undefined;
  readonly channel: string;
  readonly clients: number;
  readonly size: number;
  /** `pg_notify` unless given. */
  readonly via?: NotifyFunction;
  readonly send:
    | { readonly kind: 'burst'; readonly count: number }
    | { readonly kind: 'paced'; readonly count: number; readonly rate: number };
  /** Multiplexed clients on the target's `/`, subscribing to this. */
  readonly mux?: MuxSubscribe;
  /** Client URLs instead of the target's URLs of `channel` (e.g. one channel per client). */
  readonly urls?: readonly string[];
  /** Client i gets only its share of the notifications (ConnectSpec.modulus; default 1: all). */
  readonly modulus?: number;
  /** Round-robin channels and filter keys of the notifications (bench/notifier.ts). */
  readonly spread?: Spread;
  /** Credit window for this trial instead of the rig's. */
  readonly windowBytes?: number;
  /** How the clients connect, where not the pool's defaults. */
  readonly connect?: Pick<ConnectSpec, 'generators' | 'timeoutMs' | 'retryRefusedMs' | 'ownAddresses'>;
  /** Called at the trial's turns, e.g. to watch the delivery window (bench/timeline.ts). */
  readonly hooks?: TrialHooks;
}

/** What a caller may do at a trial's turns; each is called at most once. */
export interface TrialHooks {
  /** The clients are connected and the idle RSS has been read; nothing is sent until it resolves. */
  readonly idle?: () => void | Promise<void>;
  /** The first notification is about to be sent. */
  readonly sending?: () => void;
  /** Every open client has everything, or nothing moved for the drain time; before the reports. */
  readonly drained?: () => void;
}

/** Everything one trial measured. CPU figures are % of one core over the send-and-drain phase. */
export interface TrialResult {
  readonly label: string;
  readonly clients: number;
  readonly size: number;
  readonly connected: number;
  readonly connectFailures: number;
  readonly firstError: string | undefined;
  readonly connectMs: number;
  /** Upgrades answered 503 while connecting, and how many of those were tried again. */
  readonly refused: number;
  readonly retried: number;
  /** Notifications planned and sent (fewer only when the send deadline passed). */
  readonly planned: number;
  readonly sent: number;
  /** Frames all clients together should receive (each client its share of what was sent). */
  readonly expected: number;
  readonly received: number;
  readonly lost: number;
  /** Clients that ended with less than their share (where the lost frames are). */
  readonly incomplete: number;
  readonly duplicated: number;
  readonly reordered: number;
  readonly stray: number;
  readonly firstStray: string | undefined;
  /** Multiplexed: frames whose server seq broke their channel's sequence (bench/tracker.ts). */
  readonly seqBreaks: number;
  readonly closes: Readonly<Record<string, number>>;
  readonly openLoop: boolean;
  /** The server's own account when something went wrong (refusals, closes from its /metrics). */
  readonly diagnosis: string;
  readonly durationMs: number;
  readonly framesPerSecond: number;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  readonly maxMs: number | undefined;
  /** `other`: the machine's busy time not spent in the four groups (other processes, kernel threads). */
  readonly cpu: {
    readonly server: number;
    readonly postgres: number;
    readonly generators: number;
    readonly notifier: number;
    readonly other: number;
    /** CPU seconds over the same phase, for a cost per frame. */
    readonly seconds: { readonly server: number; readonly generators: number };
  };
  /** All frames' latencies, for pooling rounds. */
  readonly latency: Histogram;
  /** Server RSS (kB, summed over its processes) before connecting, with the clients idle, and after sending. */
  readonly rssEmptyKb: number;
  readonly rssIdleKb: number;
  readonly rssAfterKb: number;
}

/** The shared machinery a trial runs on. */
export interface Rig {
  readonly db: BenchDatabase;
  readonly pool: Pool;
  readonly notifier: Notifier;
  /** Destination addresses 127.0.0.1..N the clients spread over. */
  readonly addresses: number;
  /** Bytes of notifications allowed ahead of the slowest client (bench/notifier.ts). */
  readonly windowBytes: number;
}

let runs = 0;
const DRAIN_MS = 3000;
const QUIET_CHECK_MS = 500;
const SEND_DEADLINE_MS = 120_000;

/** Runs one trial; the clients are closed again whatever happens. */
export async function runTrial(rig: Rig, spec: TrialSpec): Promise<TrialResult> {
  const { pool, notifier, db } = rig;
  const rssEmptyKb = spec.target?.rssKb() ?? 0;
  const windowBytes = spec.windowBytes ?? rig.windowBytes;
  try {
    const connect = await pool.connect({
      kind: spec.target === undefined ? 'pg' : spec.mux !== undefined ? 'mux' : 'ws',
      urls: spec.urls ?? spec.target?.urls(spec.channel, rig.addresses) ?? [db.url],
      channel: spec.channel,
      count: spec.clients,
      ...(spec.modulus === undefined ? {} : { modulus: spec.modulus }),
      ...(spec.mux === undefined ? {} : { subscribe: spec.mux }),
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
    const meters = {
      server: cpuMeter(() => spec.target?.processes() ?? []),
      postgres: cpuMeter(() => db.processes()),
      generators: cpuMeter(() => pool.pids),
      notifier: cpuMeter(() => [process.pid]),
    };
    spec.hooks?.sending?.();
    const machineStart = machineTimes().busy;
    const wallStart = performance.now();
    const base = { channel: spec.channel, run, count, size: spec.size, via: spec.via, ...spec.spread };
    const sent: Sent =
      spec.send.kind === 'paced'
        ? await notifier.paced({ ...base, rate: spec.send.rate })
        : await notifier.burst({ ...base, windowBytes, credit: pool, deadlineMs: SEND_DEADLINE_MS });
    // Drain: until every open client has all, or nothing arrives for DRAIN_MS. Credit moves in steps
    // every client of a generator must pass (1,310 notifications × 1,000 clients = 1.3 M frames at
    // 100 B), which on a loaded machine can take longer than DRAIN_MS, so while credit is quiet the
    // frames received so far are what says whether anything still moves.
    let last = pool.progress();
    let frames = -1;
    let movedAt = performance.now();
    const drainUntil = movedAt + SEND_DEADLINE_MS;
    while (last < sent.sent && connect.opened > 0 && performance.now() - movedAt < DRAIN_MS) {
      if (performance.now() > drainUntil) break;
      await pool.nextProgress(QUIET_CHECK_MS);
      const now = pool.progress();
      const received = now === last ? await pool.received() : frames;
      // Progress that came in while the count was asked for would otherwise wait out QUIET_CHECK_MS.
      const latest = pool.progress();
      if (latest !== last || received !== frames) movedAt = performance.now();
      last = latest;
      frames = received;
    }
    spec.hooks?.drained?.();
    const [server, postgres, generators, orchestrator] = [
      meters.server(),
      meters.postgres(),
      meters.generators(),
      meters.notifier(),
    ];
    const machine = ((machineTimes().busy - machineStart) / ((performance.now() - wallStart) / 1000)) * 100;
    const ours = server.percent + postgres.percent + generators.percent + orchestrator.percent;
    const cpu = {
      server: server.percent,
      postgres: postgres.percent,
      generators: generators.percent,
      notifier: orchestrator.percent,
      other: Math.max(0, machine - ours),
      seconds: { server: server.seconds, generators: generators.seconds },
    };
    const rssAfterKb = spec.target?.rssKb() ?? 0;
    const reports = await pool.report();
    const troubled = connect.failed > 0 || reports.some((r) => Object.keys(r.closes).some((code) => code !== '1000'));
    const diagnosis = troubled ? ((await spec.target?.diagnose()) ?? '') : '';
    return summarize(spec, reports, sent, cpu, { connect, rssEmptyKb, rssIdleKb, rssAfterKb, diagnosis });
  } finally {
    await pool.close();
  }
}

function summarize(
  spec: TrialSpec,
  reports: readonly GeneratorReport[],
  sent: Sent,
  cpu: TrialResult['cpu'],
  extra: {
    connect: ConnectResult;
    rssEmptyKb: number;
    rssIdleKb: number;
    rssAfterKb: number;
    diagnosis: string;
  },
): TrialResult {
  const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
  const histogram = createHistogram();
  const closes: Record<string, number> = {};
  for (const report of reports) {
    histogram.add(decodeHistogram(report.latency));
    for (const [code, n] of Object.entries(report.closes)) closes[code] = (closes[code] ?? 0) + n;
  }
  const received = sum(reports.map((r) => sum(r.unique)));
  const connected = extra.connect.opened;
  // Each client's share of the planned notifications; a send cut short by its deadline scales it.
  const wanted = sum(reports.map((r) => sum(r.expected)));
  const expected = sent.sent === spec.send.count ? wanted : Math.round((wanted * sent.sent) / spec.send.count);
  const lastReceive = Math.max(0, ...reports.map((r) => r.lastReceiveMs));
  const durationMs = lastReceive > 0 ? lastReceive - sent.firstSendMs : 0;
  return {
    label: spec.label,
    clients: spec.clients,
    size: spec.size,
    connected,
    connectFailures: extra.connect.failed,
    firstError: extra.connect.firstError,
    connectMs: extra.connect.ms,
    refused: extra.connect.refused,
    retried: extra.connect.retried,
    planned: spec.send.count,
    sent: sent.sent,
    expected,
    received,
    lost: expected - received,
    incomplete: sum(reports.map((r) => r.unique.filter((n, i) => n < (r.expected[i] ?? 0)).length)),
    duplicated: sum(reports.map((r) => sum(r.duplicated))),
    reordered: sum(reports.map((r) => sum(r.reordered))),
    stray: sum(reports.map((r) => r.stray)),
    firstStray: reports.find((r) => r.firstStray !== undefined)?.firstStray,
    seqBreaks: sum(reports.map((r) => r.seqBreaks)),
    closes,
    openLoop: sent.openLoop,
    diagnosis: extra.diagnosis,
    durationMs,
    framesPerSecond: durationMs > 0 ? received / (durationMs / 1000) : 0,
    p50Ms: quantileMs(histogram, 0.5),
    p99Ms: quantileMs(histogram, 0.99),
    maxMs: maxLatencyMs(histogram),
    cpu,
    latency: histogram,
    rssEmptyKb: extra.rssEmptyKb,
    rssIdleKb: extra.rssIdleKb,
    rssAfterKb: extra.rssAfterKb,
  };
}
