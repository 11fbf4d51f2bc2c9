/**
 * Ingest (issue 20): what the way a bridge hears of durable messages costs the writers, with a bridge running
 * and a client subscribed. Each transaction inserts a row into an application table and sends one 100 B message:
 * `pg_notify` on a plain channel (the baseline), `pgws.send` with `[database] ingest = "notify"` (it NOTIFYs its
 * wake-up), or `pgws.send` with `"replication"` (no NOTIFY: the bridge reads the logical replication of
 * pgws.messages). 16 and 64 concurrent writers over 16 channels (writer i on channel i % 16), and 64 on one hot
 * channel. Per case: transactions per second, commit-to-client latency p50/p99, and whether every message came.
 */

import { join } from 'node:path';
import postgres, { type Sql } from 'postgres';
import type { WritersCase } from './ingest-writers.ts';
import { openMux } from './mux-client.ts';
import { cpuMeter } from './procstat.ts';
import { type Column, check, count, ms, num, ratio, section, type TargetCheck, times } from './report.ts';
import * as s from './scenario.ts';
import type { Target } from './servers.ts';
import { prepareWriters } from './writers.ts';

const PREFIX = 'bench_ingest_';
const TABLE = 'bench_ingest_writes';
const CELLS = [
  { writers: 16, channels: 16 },
  { writers: 64, channels: 16 },
  { writers: 64, channels: 1 },
] as const;
// `insert` (no message, no bridge) is the writers' ceiling on this machine.
const KINDS = ['insert', 'pg_notify', 'notify', 'replication'] as const;
type Kind = (typeof KINDS)[number];
const MESSAGES = ['pg_notify', 'notify', 'replication'] as const;
type Run = {
  perSecond: number;
  sent: number;
  got: number;
  p50: number | undefined;
  p99: number | undefined;
  pg: number;
  ours: number;
  /** What the writers' backends were doing, sampled every 20 ms: wait event (or CPU) → samples. */
  waits: Map<string, number>;
};
type Row = (typeof CELLS)[number] & { readonly runs: Record<Kind, Run[]> };

const channelsOf = (n: number) => Array.from({ length: n }, (_, i) => `${PREFIX}${i}`);
const now = () => performance.timeOrigin + performance.now();
const percentile = (sorted: readonly number[], p: number) =>
  sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];

/** The bridge of one case: its channels plain (pg_notify) or durable, in the case's ingest mode. */
function bridgeToml(kind: Kind, channels: readonly string[]): string {
  const ingest = kind === 'replication' ? 'replication' : 'notify';
  const tables = channels.map(
    (channel) => `[channels.${channel}]\n${kind === 'pg_notify' ? '' : 'durable = true\nretain = 10000000\n'}`,
  );
  return `[database]\ningest = "${ingest}"\n\n${tables.join('\n')}`;
}

/** Waits until the bridge is ready (in replication mode: its stream is up and pgws.send NOTIFYs nobody). */
async function whenReady(target: Target, admin: Sql, kind: Kind, channels: readonly string[]) {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const ready = (await fetch(`http://127.0.0.1:${target.port}/readyz`).then((r) => r.status)) === 200;
    const [row] =
      kind === 'replication'
        ? await admin`SELECT count(*)::int AS n FROM pgws.streams WHERE channel = ANY(${channels as string[]}) AND NOT wake`
        : [{ n: channels.length }];
    if (ready && row?.['n'] === channels.length) return;
    if (performance.now() > deadline) throw new Error(`the ${kind} bridge was not ready within 30 s`);
    await Bun.sleep(100);
  }
}

/**
 * Samples what the writers' backends wait on (pg_stat_activity, every 20 ms) until `done`: the profile that
 * names what bounds a case.
 */
async function sampleWaits(probe: Sql, done: Promise<unknown>): Promise<Map<string, number>> {
  const waits = new Map<string, number>();
  let finished = false;
  void done.finally(() => {
    finished = true;
  });
  while (!finished) {
    const rows = await probe`SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS what
      FROM pg_stat_activity WHERE backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()
        AND application_name = 'bench_ingest_writer'`;
    for (const row of rows) waits.set(String(row['what']), (waits.get(String(row['what'])) ?? 0) + 1);
    await Bun.sleep(20);
  }
  return waits;
}

/** Starts the writers' process for a case; `go` starts them and resolves with what they report. */
async function startWriters(c: WritersCase) {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, 'ingest-writers.ts'), JSON.stringify(c)], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const lines = (async function* () {
    let pending = '';
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      for (let at = pending.indexOf('\n'); at >= 0; at = pending.indexOf('\n')) {
        yield pending.slice(0, at);
        pending = pending.slice(at + 1);
      }
    }
  })();
  if ((await lines.next()).value !== 'ready') throw new Error('the writers process did not start');
  return {
    async go(): Promise<{ sent: number; seconds: number; committing: Record<string, number> }> {
      child.stdin.write('go\n');
      await child.stdin.flush();
      const { value } = await lines.next();
      await child.exited;
      if (typeof value !== 'string') throw new Error(`the writers process exited with ${child.exitCode}`);
      return JSON.parse(value);
    },
    kill: () => child.kill(),
  };
}

/** One case for `seconds`: every writer commits back to back; the client counts and times what arrives. */
async function trial(context: s.Context, admin: Sql, probe: Sql, c: Row & { kind: Kind }, seconds: number) {
  const channels = channelsOf(c.channels);
  await admin.unsafe(`TRUNCATE pgws.messages, pgws.streams, ${TABLE}`);
  const target =
    c.kind === 'insert'
      ? undefined
      : await s.startOursFor(context, { toml: bridgeToml(c.kind, channels), healthyInARow: 1 });
  if (target !== undefined) await whenReady(target, admin, c.kind, channels);
  const client = target === undefined ? undefined : await openMux(target.rootUrls(1)[0] ?? '', 10_000);
  const writers = await startWriters({
    url: context.rig.db.url,
    kind: c.kind,
    writers: c.writers,
    channels,
    seconds,
    table: TABLE,
  });
  const received = new Map<string, number>();
  let expected = Number.POSITIVE_INFINITY;
  const all = Promise.withResolvers<void>();
  try {
    await client?.subscribe(
      channels.map((channel) => ({ channel })),
      (text) => {
        const at = now();
        const frame = JSON.parse(text) as { type?: string; payload?: string };
        if (frame.type !== 'message' || typeof frame.payload !== 'string') return;
        received.set((JSON.parse(frame.payload) as { k: string }).k, at);
        if (received.size >= expected) all.resolve();
      },
      10_000,
    );
    const pg = cpuMeter(context.rig.db.processes);
    const ours = cpuMeter(() => target?.processes() ?? []);
    const writing = writers.go();
    const [report, waits] = await Promise.all([writing, sampleWaits(probe, writing)]);
    const cpu = { pg: pg().percent, ours: ours().percent };
    expected = report.sent;
    if (client !== undefined && received.size < report.sent) await Promise.race([all.promise, Bun.sleep(20_000)]);
    const latencies: number[] = [];
    for (const [k, at] of received) {
      const committed = report.committing[k];
      if (committed !== undefined) latencies.push(at - committed);
    }
    latencies.sort((a, b) => a - b);
    const [p50, p99] = [percentile(latencies, 50), percentile(latencies, 99)];
    const got = client === undefined ? report.sent : received.size;
    return { perSecond: report.sent / report.seconds, sent: report.sent, got, p50, p99, ...cpu, waits };
  } finally {
    writers.kill();
    await client?.close().catch(() => {});
    await target?.stop();
  }
}

/** Runs the ingest scenario. */
export async function ingest(context: s.Context): Promise<s.Outcome> {
  const { rig, say, quick } = context;
  const seconds = quick ? 1 : 3;
  const rounds = quick ? 1 : 3;
  const admin = postgres(rig.db.url, { max: 1, onnotice: () => {} });
  const probe = postgres(rig.db.url, { max: 1, onnotice: () => {} });
  try {
    await prepareWriters(admin, PREFIX, TABLE);
    const rows: Row[] = CELLS.map((cell) => ({
      ...cell,
      runs: { insert: [], pg_notify: [], notify: [], replication: [] },
    }));
    const cases = rows.flatMap((row) => KINDS.map((kind) => ({ ...row, kind })));
    await s.inTurns(cases, rounds, async (c, round) => {
      say(`ingest: ${c.writers} writers × ${c.kind}, ${count(c.channels, 'channel')}, round ${round}/${rounds}`);
      c.runs[c.kind].push(await trial(context, admin, probe, c, seconds));
    });
    await admin.unsafe(`DROP TABLE ${TABLE}; TRUNCATE pgws.messages, pgws.streams`).simple();
    return { sections: [report(rows, { seconds, rounds, version: rig.db.version })], targets: targets(rows) };
  } finally {
    await Promise.all([admin, probe].map((sql) => sql.end({ timeout: 5 })));
  }
}

const median = (runs: readonly Run[]) => s.middle(runs, (r) => r.perSecond);
const LABEL: Record<Kind, string> = {
  insert: 'INSERT only',
  pg_notify: 'pg_notify',
  notify: 'send, notify',
  replication: 'send, replication',
};
/** The three commonest waits over all rounds of a case, with their share of the samples. */
function topWaits(runs: readonly Run[]): string {
  const all = new Map<string, number>();
  for (const run of runs) for (const [what, n] of run.waits) all.set(what, (all.get(what) ?? 0) + n);
  const total = [...all.values()].reduce((a, b) => a + b, 0);
  return [...all]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([what, n]) => `${what} ${num((n / total) * 100)} %`)
    .join(', ');
}
// Paired by round: the kinds of a cell run one after the other, so a disturbance hits them alike.
const paired = (row: Row, kind: Kind) =>
  s.middle(
    row.runs.pg_notify.flatMap((base, i) => ratio(row.runs[kind][i]?.perSecond, base.perSecond) ?? []),
    (x) => x,
  );
const delivered = (runs: readonly Run[]) => runs.every((r) => r.got === r.sent);
const latency = (kind: Kind) => (row: Row) => {
  const r = median(row.runs[kind]);
  return r === undefined ? '–' : `${ms(r.p50)} / ${ms(r.p99)}`;
};

function report(rows: readonly Row[], how: { seconds: number; rounds: number; version: string }) {
  const columns: Column<Row>[] = [
    ['writers', (row) => num(row.writers)],
    ['channels', (row) => (row.channels === 1 ? '1 (hot)' : String(row.channels))],
    ...KINDS.map((kind): Column<Row> => [`${LABEL[kind]} tx/s`, (row) => num(median(row.runs[kind])?.perSecond)]),
    ['notify / pg_notify', (row) => times(paired(row, 'notify'))],
    ['replication / pg_notify', (row) => times(paired(row, 'replication'))],
    ...MESSAGES.map((kind): Column<Row> => [`${kind} p50 / p99 ms`, latency(kind)]),
    ['all delivered', (row) => MESSAGES.map((kind) => (delivered(row.runs[kind]) ? 'yes' : 'NO')).join(' · ')],
    ['CPU pg %', (row) => KINDS.map((kind) => num(median(row.runs[kind])?.pg)).join(' · ')],
    ['CPU bridge %', (row) => MESSAGES.map((kind) => num(median(row.runs[kind])?.ours)).join(' · ')],
  ];
  const waits = rows.flatMap((row) =>
    KINDS.map(
      (kind) =>
        `- ${row.writers} writers, ${count(row.channels, 'channel')}, ${LABEL[kind]}: ${topWaits(row.runs[kind])}`,
    ),
  );
  return section(
    'Ingest: writers with a bridge running, pg_notify beside pgws.send in each ingest mode (one INSERT + one 100 B message per transaction)',
    columns,
    rows,
    [
      `Median of ${count(how.rounds, 'run')} × ${how.seconds} s per case, the cases taking turns; the ratios are the median of each round's own (the kinds of a cell run one after the other). PostgreSQL ${how.version}. Each transaction: BEGIN; INSERT into a 4-column table; \`SELECT pg_notify(ch, payload)\` (a plain channel) or \`SELECT pgws.send(ch, payload)\` (a durable one); COMMIT; each writer on its own postgres.js connection, back to back, all in one process of their own (bench/ingest-writers.ts). A fresh bridge per case (ingest = notify for pg_notify and send, notify; replication for send, replication), one pgws.v1 client in the benchmark process subscribed to every channel of the case. Latency: from the writer's COMMIT being sent to the client's receipt of the message. CPU columns: % of one core, in the order of the tx/s columns (the bridge's without INSERT only, which runs none). Where the writers' backends were, sampled every 20 ms from pg_stat_activity over all rounds (share of samples; CPU = no wait event):`,
      ...waits,
    ],
  );
}

function targets(rows: readonly Row[]): TargetCheck[] {
  const row = rows.find((r) => r.writers === 64 && r.channels === 16);
  if (row === undefined) return [];
  const replication = median(row.runs.replication);
  const baseline = median(row.runs.pg_notify);
  return [
    check(
      '64 writers, 16 channels: pgws.send with ingest = replication ≥ 2.5 × pg_notify tx/s',
      `${num(replication?.perSecond)} vs ${num(baseline?.perSecond)} tx/s`,
      paired(row, 'replication'),
      { min: 2.5 },
    ),
    check(
      '64 writers, 16 channels, ingest = replication: commit-to-client p99 ≤ 100 ms, every message delivered',
      `p99 ${ms(replication?.p99)}`,
      replication?.p99 === undefined ? undefined : replication.p99 / 100,
      { max: 1 },
      delivered(row.runs.replication),
    ),
  ];
}
