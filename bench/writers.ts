/**
 * Writers: what a durable channel costs the application's own transactions. Each transaction inserts a row
 * into a small application table and sends one 100 B JSON message, by `pg_notify` (the baseline) or by
 * `pgws.send` (which also numbers it on its channel's counter row and stores it); at 1 and 16 concurrent
 * writers, each on its own postgres.js connection, over 16 channels (writer i on channel i % 16) and over one
 * hot channel, with and without one LISTEN connection on the channels. No bridge runs: only the writers' side.
 */
import postgres, { type Sql, type TransactionSql } from 'postgres';
import { INSTALL_SQL } from '../src/db/script.ts';
import { cpuMeter, machineTimes } from './procstat.ts';
import { type Column, count, num, ratio, section, times } from './report.ts';
import * as s from './scenario.ts';
import { within } from './wait.ts';

const MAX_WRITERS = 16;
const PREFIX = 'bench_writers_';
const TABLE = 'bench_writes';
const PAYLOAD = (() => {
  const head = '{"order":12345,"status":"shipped","note":"';
  return `${head}${'x'.repeat(100 - head.length - 2)}"}`;
})();
// One writer has one channel whatever the spread, so it gets one row.
const CELLS = [
  { writers: 1, channels: 1 },
  { writers: MAX_WRITERS, channels: MAX_WRITERS },
  { writers: MAX_WRITERS, channels: 1 },
] as const;
// `insert` (no message at all) is the writers' ceiling; a LISTENer hears nothing of it, so it runs without.
const KINDS = ['insert', 'notify', 'send'] as const;
type Kind = (typeof KINDS)[number];
type Run = {
  readonly perSecond: number;
  readonly sent: number;
  readonly heard: number;
  readonly pg: number;
  readonly bench: number;
  readonly other: number;
};

type Row = (typeof CELLS)[number] & { readonly listener: boolean; readonly runs: Record<Kind, Run[]> };

const message = (tx: TransactionSql, kind: Kind, channel: string) =>
  kind === 'notify'
    ? tx`SELECT pg_notify(${channel}, ${PAYLOAD})`
    : kind === 'send'
      ? tx`SELECT pgws.send(${channel}, ${PAYLOAD})`
      : undefined;

/** One case for `seconds`: every writer commits transactions back to back until the time is up. */
async function trial(
  context: s.Context,
  writers: readonly Sql[],
  c: Row & { readonly kind: Kind },
  seconds: number,
): Promise<Run> {
  const { db } = context.rig;
  const [admin] = writers as [Sql];
  await admin.unsafe(`TRUNCATE pgws.messages, pgws.streams, ${TABLE}`);
  const listener = c.listener ? postgres(db.url, { max: 1, onnotice: () => {} }) : undefined;
  let heard = 0;
  let expected = Number.POSITIVE_INFINITY;
  const caughtUp = Promise.withResolvers<void>();
  const hear = () => {
    if (++heard >= expected) caughtUp.resolve();
  };
  try {
    for (let i = 0; i < c.channels; i++) await listener?.listen(`${PREFIX}${i}`, hear);
    const pg = cpuMeter(db.processes);
    const bench = cpuMeter(() => [process.pid]);
    const busy = machineTimes().busy;
    const started = performance.now();
    const end = started + seconds * 1000;
    const counts = await Promise.all(
      writers.slice(0, c.writers).map(async (sql, i) => {
        const channel = `${PREFIX}${i % c.channels}`;
        let n = 0;
        for (; performance.now() < end; n++) {
          await sql.begin(async (tx) => {
            await tx`INSERT INTO ${tx(TABLE)} (writer, body) VALUES (${i}, ${PAYLOAD})`;
            await message(tx, c.kind, channel);
          });
        }
        return n;
      }),
    );
    const wall = (performance.now() - started) / 1000;
    const sent = counts.reduce((a, b) => a + b, 0);
    const cpu = { pg: pg().percent, bench: bench().percent };
    const other = ((machineTimes().busy - busy) / wall) * 100 - cpu.pg - cpu.bench;
    expected = sent;
    if (listener !== undefined && heard < sent) await within(caughtUp.promise, 10_000, 'listener').catch(() => {});
    return { perSecond: sent / wall, sent, heard, ...cpu, other };
  } finally {
    await listener?.end({ timeout: 5 });
  }
}

/**
 * Installs pgws and makes the application table `table`. The cases TRUNCATE pgws.messages and pgws.streams:
 * a database that holds channels not named `prefix…` (someone else's) is refused.
 */
export async function prepareWriters(admin: Sql, prefix: string, table: string): Promise<void> {
  await admin.unsafe(INSTALL_SQL).simple();
  const [other] = await admin`SELECT channel FROM pgws.streams WHERE left(channel, ${prefix.length}) <> ${prefix}
    UNION ALL SELECT channel FROM pgws.messages WHERE left(channel, ${prefix.length}) <> ${prefix} LIMIT 1`;
  if (other !== undefined)
    throw new Error(`pgws.streams holds channel "${other['channel']}": use a database of its own`);
  await admin.unsafe(
    `CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, writer int NOT NULL, body text NOT NULL, made_at timestamptz NOT NULL DEFAULT now())`,
  );
}

/** Runs the writers scenario. */
export async function writers(context: s.Context): Promise<s.Outcome> {
  const { rig, say, quick } = context;
  const seconds = quick ? 1 : 2.5;
  const rounds = quick ? 1 : 6;
  const conns = Array.from({ length: MAX_WRITERS }, () => postgres(rig.db.url, { max: 1, onnotice: () => {} }));
  const [admin] = conns as [Sql];
  try {
    await prepareWriters(admin, PREFIX, TABLE);
    const [settings] =
      await admin`SELECT current_setting('synchronous_commit') AS sc, current_setting('fsync') AS fsync,
      current_setting('wal_sync_method') AS sync`;
    await Promise.all(conns.map((sql) => sql`SELECT 1`));
    const rows: Row[] = CELLS.flatMap((cell) =>
      [false, true].map((listener) => ({ ...cell, listener, runs: { insert: [], notify: [], send: [] } })),
    );
    const cases = rows.flatMap((row) =>
      KINDS.filter((kind) => !(row.listener && kind === 'insert')).map((kind) => ({ ...row, kind })),
    );
    await s.inTurns(cases, rounds, async (c, round) => {
      const heard = c.listener ? ', a LISTENer' : '';
      say(`writers: ${c.writers} × ${c.kind}, ${count(c.channels, 'channel')}${heard}, round ${round}/${rounds}`);
      c.runs[c.kind].push(await trial(context, conns, c, seconds));
    });
    await admin.unsafe(`DROP TABLE ${TABLE}; TRUNCATE pgws.messages, pgws.streams`).simple();
    const database = `PostgreSQL ${rig.db.version}, synchronous_commit = ${settings?.['sc']}, fsync = ${settings?.['fsync']}, wal_sync_method = ${settings?.['sync']}`;
    return { sections: [report(rows, { seconds, rounds, database })], targets: [] };
  } finally {
    await Promise.all(conns.map((sql) => sql.end({ timeout: 5 })));
  }
}

const median = (runs: readonly Run[]) => s.middle(runs, (r) => r.perSecond);
const rate = (kind: Kind) => (row: Row) => num(median(row.runs[kind])?.perSecond);
const range = (kind: Kind) => (row: Row) => s.rangeOf(row.runs[kind].map((r) => r.perSecond));
// Paired by round: a send and a notify case run one after the other, so a disturbance hits both alike.
const ratios = (row: Row) => row.runs.notify.flatMap((n, i) => ratio(row.runs.send[i]?.perSecond, n.perSecond) ?? []);
const spread = (values: readonly number[]) =>
  values.length < 2 ? '' : `${times(Math.min(...values))}–${times(Math.max(...values))}`;
const cpu = (pick: (r: Run) => number) => (row: Row) =>
  (['notify', 'send'] as const)
    .map((kind) => {
      const r = median(row.runs[kind]);
      return num(r === undefined ? undefined : pick(r));
    })
    .join(' · ');

function report(rows: readonly Row[], how: { seconds: number; rounds: number; database: string }) {
  const columns: Column<Row>[] = [
    ['writers', (row) => num(row.writers)],
    ['channels', (row) => (row.channels === 1 ? '1 (hot)' : `${row.channels} (writer i on i % ${row.channels})`)],
    ['LISTENer', (row) => (row.listener ? '1 connection' : 'none')],
    ['INSERT only tx/s', (row) => (row.listener ? '' : rate('insert')(row))],
    ['pg_notify tx/s', rate('notify')],
    ['range', range('notify')],
    ['pgws.send tx/s', rate('send')],
    ['range', range('send')],
    ['send / notify', (row) => times(s.middle(ratios(row), (x) => x))],
    ['range', (row) => spread(ratios(row))],
    ['CPU pg %', cpu((r) => r.pg)],
    ['CPU bench %', cpu((r) => r.bench)],
    ['CPU other %', cpu((r) => r.other)],
  ];
  const deaf = rows.flatMap((row) =>
    (['notify', 'send'] as const).flatMap((kind) =>
      row.runs[kind]
        .filter((r) => row.listener && r.heard < r.sent)
        .map(
          (r) =>
            `- ${row.writers} × ${kind}, ${count(row.channels, 'channel')}: the LISTENer heard ${num(r.heard)} of ${num(r.sent)} within 10 s`,
        ),
    ),
  );
  return section(
    `Writers: transactions per second, pg_notify beside pgws.send (one INSERT + one 100 B message each)`,
    columns,
    rows,
    [
      `Median of ${count(how.rounds, 'run')} × ${how.seconds} s per case, the cases taking turns; send / notify is the median of the rounds' own ratios (in a round the send and notify cases run one after the other). ${how.database}. Each transaction is BEGIN; INSERT into a 4-column table; \`SELECT pg_notify(ch, payload)\` or \`SELECT pgws.send(ch, payload)\` (or nothing: INSERT only); COMMIT, each writer on its own postgres.js connection in the benchmark process, back to back. Between cases the application table, pgws.messages and pgws.streams are truncated. The LISTENer is one postgres.js connection listening on every channel of the case, in the same process. CPU columns: notify · send, % of one core: pg = the whole PostgreSQL server, bench = the benchmark process (writers and LISTENer), other = the rest of the machine.`,
      ...deaf,
    ],
  );
}
