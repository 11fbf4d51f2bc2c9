/**
 * Fixed-rate latency: 10 notifications/s to 1,000 clients (about 10,000 frames/s), one producer,
 * one notification per transaction, stamped just before it is sent. Latency is send → WebSocket
 * message event in the client, so it includes the commit, the LISTEN connection, the fan-out and
 * the client's own event loop. Bare bridge, ours on a raw channel and ours on the schema channel
 * take turns each round, so none gets the quieter machine; p99 is over all rounds' frames pooled.
 */
import { createHistogram, maxLatencyMs, quantileMs } from './histogram.ts';
import { anomalies, type Context, clean, type Outcome } from './scenario.ts';
import { SCHEMA_CHANNEL, startBare, startOurs } from './servers.ts';
import { check, ms, num, ratio, times } from './stats.ts';
import type { Target } from './target.ts';
import { runTrial, type TrialResult } from './trial.ts';

const RATE = 10;
const CLIENTS = 1000;

interface Variant {
  readonly label: string;
  readonly target: Target;
  readonly channel: string;
  readonly results: TrialResult[];
}

/** Runs the fixed-rate latency scenario. */
export async function latency(context: Context): Promise<Outcome> {
  const { rig, say } = context;
  // p99 of a round is the tail of its one or two slowest notifications: many short rounds, taking
  // turns, keep one disturbed moment from deciding it.
  const seconds = context.quick ? 3 : 5;
  const rounds = context.quick ? 1 : 6;
  const send = { kind: 'paced', rate: RATE, count: RATE * seconds } as const;
  const started: Target[] = [];
  const variants: Variant[] = [];
  try {
    const bare = await startBare(rig.db.url);
    started.push(bare);
    const ours = await startOurs({ databaseUrl: rig.db.url, profileDir: context.profileDir });
    started.push(ours);
    variants.push(
      { label: 'bare', target: bare, channel: 'bench_latency', results: [] },
      { label: 'ours, raw channel', target: ours, channel: 'bench_latency_raw', results: [] },
      { label: 'ours, schema channel', target: ours, channel: SCHEMA_CHANNEL, results: [] },
    );
    for (let round = 1; round <= rounds; round++) {
      for (const variant of variants) {
        say(`fixed-rate: ${variant.label}, round ${round}/${rounds}`);
        variant.results.push(
          await runTrial(rig, {
            label: variant.label,
            target: variant.target,
            channel: variant.channel,
            clients: CLIENTS,
            size: 100,
            send,
          }),
        );
      }
    }
  } finally {
    await Promise.all(started.map((t) => t.stop()));
  }
  const pooled = (results: readonly TrialResult[]) => {
    const all = createHistogram();
    for (const r of results) all.add(r.latency);
    return { p50: quantileMs(all, 0.5), p99: quantileMs(all, 0.99), max: maxLatencyMs(all) };
  };
  const [bare, raw, schema] = variants.map((v) => pooled(v.results));
  const sum = (results: readonly TrialResult[], pick: (r: TrialResult) => number) =>
    results.reduce((n, r) => n + pick(r), 0);
  const mean = (results: readonly TrialResult[], pick: (r: TrialResult) => number) =>
    results.length === 0 ? undefined : sum(results, pick) / results.length;
  const notes: string[] = [];
  const rows = variants.map((variant) => {
    const rs = variant.results;
    const p = pooled(rs);
    for (const [i, r] of rs.entries()) notes.push(...anomalies(r, `${r.label}, round ${i + 1}`));
    return [
      variant.label,
      `${num(Math.min(...rs.map((r) => r.connected)))}/${num(CLIENTS)}`,
      `${num(sum(rs, (r) => r.received))} / ${num(sum(rs, (r) => r.expected))}`,
      num(sum(rs, (r) => r.lost)),
      num(sum(rs, (r) => r.duplicated)),
      num(sum(rs, (r) => r.reordered)),
      num(mean(rs, (r) => r.framesPerSecond)),
      ms(p.p50),
      ms(p.p99),
      ms(p.max),
      variant === variants[0] ? '' : times(ratio(p.p99, bare?.p99)),
      rs.map((r) => ms(r.p99Ms)).join(' · '),
      num(mean(rs, (r) => r.cpu.server)),
      num(mean(rs, (r) => r.cpu.generators)),
      num(mean(rs, (r) => r.cpu.other)),
    ];
  });
  notes.unshift(
    `p50 / p99 / max over the frames of all ${rounds} round${rounds === 1 ? '' : 's'} pooled; the servers take turns round by round. Latency is send → client message event: it includes the commit (one transaction per notification) and the client's own event loop.`,
  );
  const measured = `p99 ${ms(schema?.p99)} ms vs ${ms(bare?.p99)} ms, ${rounds} round${rounds === 1 ? '' : 's'} pooled (raw channel: ${ms(raw?.p99)} ms)`;
  const every = variants[2]?.results ?? [];
  return {
    sections: [
      {
        title: `Fixed-rate latency: ${RATE} notifications/s × ${num(CLIENTS)} clients, ${rounds} × ${seconds} s each`,
        headers: [
          'server',
          'connected',
          'received / expected',
          'lost',
          'dup',
          'reord',
          'frames/s',
          'p50 ms',
          'p99 ms',
          'max ms',
          'p99 × bare',
          'p99 ms per round',
          'CPU srv %',
          'CPU gen %',
          'CPU other %',
        ],
        rows,
        notes,
      },
    ],
    targets: [
      check(
        `fixed-rate p99 at ${num(CLIENTS)} clients, every feature on ≤ 1.1 × bare bridge`,
        measured,
        ratio(schema?.p99, bare?.p99),
        { max: 1.1 },
        every.length > 0 && every.every(clean),
      ),
    ],
  };
}
