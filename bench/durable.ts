/**
 * Durable channels (`--only durable`), each figure beside a baseline of the same run: fan-out to 1,000
 * `pgws.v1` clients on a durable channel (sent with pgws.send) beside a plain one (pg_notify); catch-up,
 * 10,000 messages written while the bridge is down and resumed by a client from its restart; a resume of
 * 10,000 retained messages on another instance than the one the client saw its position on, beside the
 * resume of a 10,000-message history from one instance's memory (the replay scenario's figure).
 */
import { forget, installPgws } from './database.ts';
import { fill, HISTORY, headOf, replayOnce, SETTLE_MS, sendHistory } from './replay.ts';
import { bytes, type Column, check, mb, ms, num, ratio, section, type TargetCheck, times } from './report.ts';
import * as s from './scenario.ts';
import { SCHEMA_CHANNEL, schemaChannelToml, type Target } from './servers.ts';
import { runTrial } from './trial.ts';

const SIZE = 100;
const CLIENTS = 1000;
// Every channel has the benchmark schema, as the plain one (SCHEMA_CHANNEL) has; retention at its defaults.
const FANOUT = 'bench_durable';
const CATCH_UP = 'bench_durable_catchup';
const OTHER = 'bench_durable_other';
const KEPT = 'bench_durable_history';
const durableToml = (name: string) => schemaChannelToml(name, { settings: { durable: true } });

const FANOUT_CASES = [
  { name: 'plain', label: 'plain channel, pg_notify', channel: SCHEMA_CHANNEL, via: 'pg_notify' },
  { name: 'durable', label: 'durable channel, pgws.send', channel: FANOUT, via: 'pgws.send' },
] as const;

type FanoutRow = s.Runs & { readonly c: (typeof FANOUT_CASES)[number] };

// The server's own count of rows read from pgws.messages, per trial ÷ messages sent: one, whatever the clients.
const rowsRead = async (target: Target) => (await target.metric('pgws_durable_rows_read_total')) ?? Number.NaN;
const reads = new WeakMap<object, number>();
const tablePages = async (target: Target) => (await target.metric('pgws_durable_table_pages_total')) ?? Number.NaN;

/** Both channels on one server, taking turns, as the multiplexed scenario's 1,000-client case. */
async function fanout(context: s.Context, repetitions: number): Promise<FanoutRow[]> {
  const { rig, say } = context;
  await using target = await s.startOursFor(context, { toml: durableToml(FANOUT) });
  await readyz(target);
  const results = await s.inTurns(FANOUT_CASES, repetitions, async (c, round) => {
    say(`durable: fan-out, ${c.label}, ${num(CLIENTS)} clients, run ${round}/${repetitions}`);
    const before = await rowsRead(target);
    const result = await runTrial(rig, {
      ...{ label: c.label, target, channel: c.channel, clients: CLIENTS, size: SIZE, via: c.via },
      send: { kind: 'burst', count: context.quick ? 200 : 3000 },
      urls: target.rootUrls(rig.addresses),
      connect: { subscribe: { channels: [c.channel], filterField: undefined } },
    });
    reads.set(result, ((await rowsRead(target)) - before) / result.sent);
    return result;
  });
  return FANOUT_CASES.flatMap((c, i) => {
    const runs = s.runsOf(results[i] ?? []);
    return runs === undefined ? [] : [{ ...runs, c }];
  });
}

/** One resume of HISTORY messages, and around it what the case adds (restart, write, server memory). */
type Run = Awaited<ReturnType<typeof resumeOn>> & {
  readonly rssBeforeKb: number;
  readonly restart?: { readonly readyMs: number; readonly lastMs: number; readonly writeMs: number };
};
type ResumeRow = {
  readonly kind: 'restart' | 'other' | 'memory';
  readonly label: string;
  readonly runs: readonly Run[];
  readonly liveMs?: number;
};

/** {@link replayOnce}, with the pages of the table the server read for it (its /metrics before and after). */
async function resumeOn(...[target, ...rest]: Parameters<typeof replayOnce>) {
  const before = await tablePages(target);
  const r = await replayOnce(target, ...rest);
  return { ...r, pages: (await tablePages(target)) - before };
}

/** Resolves once `target`'s /readyz answers 200: before, upgrades are refused (503 `not_ready`). */
async function readyz(target: Target): Promise<void> {
  const url = `http://127.0.0.1:${target.port}/readyz`;
  const deadline = performance.now() + 30_000;
  while (
    (await fetch(url).then(
      (r) => r.status,
      () => 0,
    )) !== 200
  ) {
    if (performance.now() > deadline) throw new Error(`${target.label}: /readyz not 200 within 30 s`);
    await Bun.sleep(10);
  }
}

/**
 * Catch-up: the bridge is stopped, HISTORY messages are written with pgws.send, and a client resumes
 * from where it was as soon as the restarted bridge is ready; then again from the new head.
 */
async function catchUp(context: s.Context, rounds: number): Promise<ResumeRow> {
  const toml = durableToml(CATCH_UP);
  let bridge: Target = await s.startOursFor(context, { toml });
  const runs: Run[] = [];
  try {
    await readyz(bridge);
    let since = await headOf(bridge, CATCH_UP);
    for (let round = 1; round <= rounds; round++) {
      context.say(`durable: catch-up of ${num(HISTORY)} after a restart, run ${round}/${rounds}`);
      await bridge.stop();
      const writing = performance.now();
      await sendHistory(context, CATCH_UP, SIZE, 'pgws.send');
      const restarted = performance.now();
      bridge = await s.startOursFor(context, { toml, healthyInARow: 1 });
      await readyz(bridge);
      const readyMs = performance.now() - restarted;
      const rssBeforeKb = bridge.rssKb();
      const r = await resumeOn(bridge, CATCH_UP, since);
      runs.push({
        ...r,
        rssBeforeKb,
        restart: { readyMs, lastMs: r.lastAt - restarted, writeMs: restarted - writing },
      });
      since = { epoch: since.epoch, seq: since.seq + HISTORY };
    }
  } finally {
    await bridge.stop();
  }
  return { kind: 'restart', label: 'catch-up after a restart (table)', runs };
}

/**
 * Two instances: the client's position comes from A, HISTORY messages are sent with pgws.send while B
 * watches them live, and the client resumes on B. The baseline fills a history channel on A with
 * pg_notify and resumes there from memory. The two resumes take turns, each from the same position.
 */
async function otherInstance(context: s.Context, rounds: number): Promise<ResumeRow[]> {
  const history = schemaChannelToml(KEPT, { settings: { history: HISTORY } });
  await using a = await s.startOursFor(context, { label: 'ours A', toml: `${durableToml(OTHER)}\n${history}` });
  await using b = await s.startOursFor(context, { label: 'ours B', toml: durableToml(OTHER) });
  await Promise.all([readyz(a), readyz(b)]);
  const seen = await headOf(a, OTHER);
  const durable = await fill(context, b, OTHER, SIZE, 'pgws.send');
  const memory = await fill(context, a, KEPT, SIZE);
  const { since } = durable;
  const agree = seen.epoch === since.epoch && seen.seq === since.seq;
  const disagree = agree ? undefined : `A gave ${seen.epoch}:${seen.seq}, B ${since.epoch}:${since.seq}`;
  await Bun.sleep(SETTLE_MS);
  const cases = [
    {
      kind: 'other',
      label: 'durable, on the other instance (table)',
      target: b,
      channel: OTHER,
      filled: durable,
      from: seen,
    },
    {
      kind: 'memory',
      label: 'history, same instance (memory)',
      target: a,
      channel: KEPT,
      filled: memory,
      from: memory.since,
    },
  ] as const;
  const before = cases.map((c) => c.target.rssKb());
  const results = await s.inTurns(cases, rounds, async (c, round) => {
    context.say(`durable: ${c.label}, ${num(HISTORY)} messages, run ${round}/${rounds}`);
    const r = await resumeOn(c.target, c.channel, c.from, c.filled.live);
    const problem = c.filled.problem ?? (c.kind === 'other' ? disagree : undefined) ?? r.problem;
    return { ...r, problem, rssBeforeKb: before[cases.indexOf(c)] ?? 0 };
  });
  return cases.map((c, i) => ({ kind: c.kind, label: c.label, runs: results[i] ?? [], liveMs: c.filled.liveMs }));
}

/** Runs the scenario: the fan-out on one server, then the catch-up, then the two instances. */
export async function durable(context: s.Context): Promise<s.Outcome> {
  // Five, not three: on two shared cores one run of either case can be off by half.
  const repetitions = context.quick ? 1 : 5;
  const rounds = context.quick ? 2 : 5;
  await installPgws(context.rig.db.url);
  let fanned: FanoutRow[];
  let resumes: ResumeRow[];
  try {
    fanned = await fanout(context, repetitions);
    resumes = [await catchUp(context, rounds), ...(await otherInstance(context, rounds))];
  } finally {
    // The servers are stopped: leave the database's pgws tables as they were (the writers scenario checks).
    await forget(context.rig.db.url, [FANOUT, CATCH_UP, OTHER]);
  }
  return {
    sections: [fanoutSection(fanned, repetitions), resumeSection(resumes, rounds)],
    targets: [...fanoutTarget(fanned), ...resumeTargets(resumes)],
  };
}

const plainOf = (rows: readonly FanoutRow[]) => rows.find((row) => row.c.name === 'plain');

function fanoutSection(rows: readonly FanoutRow[], repetitions: number) {
  const plain = plainOf(rows)?.r.framesPerSecond;
  const columns: Column<FanoutRow>[] = [
    ['case', ({ c }) => c.label],
    ['notifications', ({ r }) => num(r.sent)],
    ...s.INTEGRITY,
    ['seq breaks', ({ r }) => num(r.seqBreaks)],
    ...s.RATE,
    ['× plain', ({ r }) => times(ratio(r.framesPerSecond, plain))],
    ['rows read / message', ({ r, c }) => (c.name === 'plain' ? '' : num(reads.get(r), 2))],
    ['srv ns / frame', ({ r }) => num(s.perFrameNs(r.cpu.seconds.server, r))],
    ...s.TAIL,
  ];
  return section(`Durable channels: fan-out to ${num(CLIENTS)} pgws.v1 clients beside a plain channel`, columns, rows, [
    `${s.medianOf(repetitions)}, the two cases taking turns on one server process; ${bytes(SIZE)} payloads, both channels with the benchmark schema, the send as in the multiplexed scenario (4 producer connections, batches of up to 500 in one transaction, 512 KiB credit window). The durable channel's batches are \`SELECT count(pgws.send(ch, …)) FROM generate_series(…)\`: each row is inserted into pgws.messages and its channel's counter row stays locked until the batch commits, so the 4 producers commit in turn; the bridge is woken by pgws.send's NOTIFY of the new seq and reads the rows by seq range, 1,000 per query, once for all clients: "rows read / message" is the server's pgws_durable_rows_read_total over the trial ÷ messages sent. "seq breaks" counts frames whose server \`seq\` is not the previous one + 1.`,
    ...new Set(rows.flatMap((row) => s.runNotes(row.c.label, row.runs))),
  ]);
}

function fanoutTarget(rows: readonly FanoutRow[]): TargetCheck[] {
  const plain = plainOf(rows);
  const durableRow = rows.find((row) => row.c.name === 'durable');
  if (plain === undefined || durableRow === undefined) return [];
  const runs = [...plain.runs, ...durableRow.runs];
  const [d, p] = [durableRow.r.framesPerSecond, plain.r.framesPerSecond];
  return [
    check(
      `${num(CLIENTS)} clients, durable channel ≥ 0.9 × plain channel, nothing lost or reordered, ${bytes(SIZE)}`,
      `${num(d)} vs ${num(p)} frames/s; ${s.faults(runs)}`,
      ratio(d, p),
      { min: 0.9 },
      runs.every(s.clean),
    ),
  ];
}

const median = (runs: readonly Run[], pick: (run: Run) => number | undefined) =>
  s.middle(
    runs.map(pick).filter((x): x is number => x !== undefined),
    (x) => x,
  );
const exact = (row: ResumeRow) => row.runs.filter((run) => run.problem === undefined).length;
const perSecond = (msValue: number | undefined) => num(HISTORY / ((msValue ?? Number.NaN) / 1000));

function resumeSection(rows: readonly ResumeRow[], rounds: number) {
  const memory = median(rows.find((row) => row.kind === 'memory')?.runs ?? [], (run) => run.lastMs);
  const columns: Column<ResumeRow>[] = [
    ['resume of 10,000', (row) => row.label],
    ['exact', (row) => `${exact(row)} / ${row.runs.length}`],
    ['restart → ready ms', ({ runs }) => ms(median(runs, (run) => run.restart?.readyMs))],
    ['restart → last ms', ({ runs }) => ms(median(runs, (run) => run.restart?.lastMs))],
    ['rows/s from restart', ({ runs }) => perSecond(median(runs, (run) => run.restart?.lastMs))],
    ['table pages', ({ runs }) => num(median(runs, (run) => run.pages))],
    ['to subscribed ms', ({ runs }) => ms(median(runs, (run) => run.subscribedMs))],
    ['subscribe → last ms', ({ runs }) => ms(median(runs, (run) => run.lastMs))],
    ['per run', ({ runs }) => runs.map((run) => ms(run.lastMs)).join(' · ')],
    ['rows/s from subscribe', ({ runs }) => perSecond(median(runs, (run) => run.lastMs))],
    [
      '× memory (time)',
      ({ runs }) =>
        times(
          ratio(
            median(runs, (run) => run.lastMs),
            memory,
          ),
        ),
    ],
    ['written ms / live ms', (row) => ms(row.liveMs ?? median(row.runs, (run) => run.restart?.writeMs))],
    ['RSS before MB', ({ runs }) => mb(median(runs, (run) => run.rssBeforeKb) ?? Number.NaN)],
    ['RSS after MB', ({ runs }) => mb(median(runs, (run) => run.rssKb) ?? Number.NaN)],
  ];
  const problems = rows.flatMap((row) =>
    row.runs.flatMap((run, i) => (run.problem === undefined ? [] : [`- ${row.label}, run ${i + 1}: ${run.problem}`])),
  );
  return section(`Durable channels: catch-up and resume of ${num(HISTORY)} messages of ${bytes(SIZE)}`, columns, rows, [
    `Medians of ${rounds} runs. Every resume subscribes on a fresh socket with \`since\` the position the client last saw and must answer \`recovered: true\` and then deliver exactly the ${num(HISTORY)} seqs after it, in order (exact); "subscribe → last" runs from sending the subscribe to the ${num(HISTORY)}th message, read in the orchestrator process, as in the replay table; "table pages" = the replaying server's pgws_durable_table_pages_total over the resume (500 rows a page). Retention is at its defaults (retain = 10,000, the hot cache the newest 1,000).`,
    `Catch-up: the bridge is stopped (SIGTERM), the ${num(HISTORY)} messages are written with pgws.send (4 connections, 500 rows per transaction: "written ms"), then it is started again; "restart" is the spawn of the new process, which the client follows as soon as /readyz answers 200 (upgrades before it are refused, \`not_ready\`; polled as /healthz every 50 ms, then /readyz every 10 ms, so up to about 60 ms late), and "restart → last" is the whole outage's tail: process start, LISTEN, heads, then the resume, all ${num(HISTORY)} rows from the table in pages of 500. RSS before = the new process when ready; after = when the last message arrived.`,
    `Other instance: two bridge processes A and B on one database; the position comes from a subscribe on A, the ${num(HISTORY)} messages are sent with pgws.send while a socket on B watches them live ("live ms": first send → last frame on B, the writers' pace: pgws.send's 4 producers commit in turn), and the client resumes on B: 9,000 rows from the table, the newest 1,000 from B's hot cache. The memory baseline is a \`history = 10,000\` channel on A filled with pg_notify and resumed on A (a history cannot be resumed on another instance). RSS before = the server that replays, after both fills; after = as the last message arrived. "× memory (time)" = this resume's time ÷ the memory resume's.`,
    ...problems,
  ]);
}

function resumeTargets(rows: readonly ResumeRow[]): TargetCheck[] {
  return rows
    .filter((row) => row.kind !== 'memory')
    .map((row) =>
      check(
        `${row.label}, ${num(HISTORY)} messages: recovered, every seq once and in order`,
        `${exact(row)} of ${row.runs.length} resumes; median ${ms(median(row.runs, (run) => run.lastMs))} ms from subscribe to the last`,
        row.runs.length > 0 && exact(row) === row.runs.length ? 1 : 0,
        { min: 1 },
      ),
    );
}
