/**
 * Fixed-rate latency: 10 notifications/s to 1,000 clients, one producer, one notification per
 * transaction, stamped just before it is sent; so latency includes the commit, the LISTEN connection,
 * the fan-out and the client's own event loop. Bare bridge, ours on a raw channel and ours on the schema
 * channel take turns each round; p99 is over all rounds' frames pooled.
 */
import { createHistogram, maxLatencyMs, quantileMs } from './histogram.ts';
import { type Column, check, count, ms, num, ratio, section, times } from './report.ts';
import * as s from './scenario.ts';
import { SCHEMA_CHANNEL, startBare } from './servers.ts';
import { runTrial, type TrialResult } from './trial.ts';

const RATE = 10;
const CLIENTS = 1000;

/** One server's rounds, their frames' latencies pooled. */
function pool(label: string, rounds: readonly TrialResult[]) {
  const all = createHistogram();
  for (const r of rounds) all.add(r.latency);
  return { label, rounds, p50: quantileMs(all, 0.5), p99: quantileMs(all, 0.99), max: maxLatencyMs(all) };
}

const sum = (rounds: readonly TrialResult[], pick: (r: TrialResult) => number) =>
  rounds.reduce((n, r) => n + pick(r), 0);
const mean = (rounds: readonly TrialResult[], pick: (r: TrialResult) => number) =>
  rounds.length === 0 ? undefined : sum(rounds, pick) / rounds.length;

/** Runs the fixed-rate latency scenario. */
export async function latency(context: s.Context): Promise<s.Outcome> {
  const { rig, say } = context;
  // p99 of a round is the tail of its one or two slowest notifications: many short rounds, taking
  // turns, keep one disturbed moment from deciding it.
  const seconds = context.quick ? 3 : 5;
  const rounds = context.quick ? 1 : 6;
  const send = { kind: 'paced', rate: RATE, count: RATE * seconds } as const;
  await using bare = await startBare(rig.db.url);
  await using ours = await s.startOursFor(context);
  const variants = [
    { label: 'bare', target: bare, channel: 'bench_latency' },
    { label: 'ours, raw channel', target: ours, channel: 'bench_latency_raw' },
    { label: 'ours, schema channel', target: ours, channel: SCHEMA_CHANNEL },
  ];
  const results = await s.inTurns(variants, rounds, ({ label, target, channel }, round) => {
    say(`fixed-rate: ${label}, round ${round}/${rounds}`);
    return runTrial(rig, { label, target, channel, clients: CLIENTS, size: 100, send });
  });
  const [baseline, raw, schema] = variants.map(({ label }, i) => pool(label, results[i] ?? []));
  const columns: Column<ReturnType<typeof pool>>[] = [
    ['server', (p) => p.label],
    ['connected', (p) => `${num(Math.min(...p.rounds.map((r) => r.connected)))}/${num(CLIENTS)}`],
    [
      'received / expected',
      (p) => `${num(sum(p.rounds, (r) => r.received))} / ${num(sum(p.rounds, (r) => r.expected))}`,
    ],
    ['lost', (p) => num(sum(p.rounds, (r) => r.lost))],
    ['dup', (p) => num(sum(p.rounds, (r) => r.duplicated))],
    ['reord', (p) => num(sum(p.rounds, (r) => r.reordered))],
    ['frames/s', (p) => num(mean(p.rounds, (r) => r.framesPerSecond))],
    ['p50 ms', (p) => ms(p.p50)],
    ['p99 ms', (p) => ms(p.p99)],
    ['max ms', (p) => ms(p.max)],
    ['p99 × bare', (p) => (p === baseline ? '' : times(ratio(p.p99, baseline?.p99)))],
    ['p99 ms per round', (p) => p.rounds.map((r) => ms(r.p99Ms)).join(' · ')],
    ['CPU srv %', (p) => num(mean(p.rounds, (r) => r.cpu.server))],
    ['CPU gen %', (p) => num(mean(p.rounds, (r) => r.cpu.generators))],
    ['CPU other %', (p) => num(mean(p.rounds, (r) => r.cpu.other))],
  ];
  const pooled = [baseline, raw, schema].filter((p) => p !== undefined);
  const title = `Fixed-rate latency: ${RATE} notifications/s × ${num(CLIENTS)} clients, ${rounds} × ${seconds} s each`;
  const measured = `p99 ${ms(schema?.p99)} ms vs ${ms(baseline?.p99)} ms, ${count(rounds, 'round')} pooled (raw channel: ${ms(raw?.p99)} ms)`;
  const every = schema?.rounds ?? [];
  return {
    sections: [
      section(title, columns, pooled, [
        `p50 / p99 / max over the frames of all ${count(rounds, 'round')} pooled; the servers take turns round by round. Latency is send → client message event: it includes the commit (one transaction per notification) and the client's own event loop.`,
        ...pooled.flatMap((p) => p.rounds.flatMap((r, i) => s.anomalies(r, `${r.label}, round ${i + 1}`))),
      ]),
    ],
    targets: [
      check(
        `fixed-rate p99 at ${num(CLIENTS)} clients, every feature on ≤ 1.1 × bare bridge`,
        measured,
        ratio(schema?.p99, baseline?.p99),
        { max: 1.1 },
        every.length > 0 && every.every(s.clean),
      ),
    ],
  };
}
