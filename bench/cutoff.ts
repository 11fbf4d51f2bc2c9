/**
 * `bun bench/cutoff.ts [--runs N] [--sockets N]`: how long `pgws.disconnect` takes to close a subject's
 * sockets (docs/PROTOCOL.md: "within 1 s every instance"). Two instances (real server processes, `[auth]` on)
 * on one PostgreSQL (embedded, or BENCH_DATABASE_URL); each run opens N multiplexed sockets of a fresh
 * subject on each, then calls `SELECT pgws.disconnect(subject)` from a third connection and times every
 * close the clients see, from the moment the statement is sent. Measured, never asserted.
 */
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { INSTALL_SQL } from '../src/db/script.ts';
import { connectMux, type MuxClient } from '../test/mux.ts';
import { type ServerProcess, spawnServer } from '../test/process.ts';
import { authToml, SECRET, SECRET_ENV, subjectToken } from '../test/tokens.ts';
import { within } from '../test/wait.ts';
import { startDatabase } from './database.ts';

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { runs: { type: 'string', default: '30' }, sockets: { type: 'string', default: '10' } },
});
const runs = Number(values.runs);
const perInstance = Number(values.sockets);

/** Quantiles of a list of milliseconds, as `min / median / p90 / max`. */
function summary(times: number[]): string {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return [sorted[0] ?? Number.NaN, at(0.5), at(0.9), sorted.at(-1) ?? Number.NaN].map((t) => t.toFixed(1)).join(' / ');
}

/** `count` sockets of `token` on `server`, each with the time its close arrives. */
async function open(server: ServerProcess, token: string, count: number) {
  const sockets: { client: MuxClient; closedAt: Promise<number> }[] = [];
  for (let i = 0; i < count; i++) {
    const client = await connectMux(server.url, { bearer: token });
    sockets.push({ client, closedAt: client.closed.then(() => performance.now()) });
  }
  return sockets;
}

const db = await startDatabase(process.env);
const sql = postgres(db.url, { max: 1, onnotice: () => {} });
const servers: ServerProcess[] = [];
try {
  await sql.unsafe(INSTALL_SQL).simple();
  for (let i = 0; i < 2; i++) {
    servers.push(
      await spawnServer({
        toml: authToml(),
        env: { DATABASE_URL: db.url, [SECRET_ENV]: SECRET },
      }),
    );
  }
  const [a, b] = servers as [ServerProcess, ServerProcess];
  const rows = {
    call: [] as number[],
    aFirst: [] as number[],
    aLast: [] as number[],
    bFirst: [] as number[],
    bLast: [] as number[],
  };
  for (let run = 0; run < runs; run++) {
    const subject = `bench_cutoff_${process.pid}_${run}`;
    const token = await subjectToken(subject);
    const [onA, onB] = [await open(a, token, perInstance), await open(b, token, perInstance)];
    const sent = performance.now();
    await sql`SELECT pgws.disconnect(${subject}, 'bench')`;
    rows.call.push(performance.now() - sent);
    for (const [sockets, first, last] of [
      [onA, rows.aFirst, rows.aLast],
      [onB, rows.bFirst, rows.bLast],
    ] as const) {
      const times = await within(Promise.all(sockets.map((s) => s.closedAt)), 10_000, 'every close');
      first.push(Math.min(...times) - sent);
      last.push(Math.max(...times) - sent);
    }
  }
  const line = (what: string, times: number[]) => `| ${what} | ${summary(times)} |`;
  process.stdout.write(
    [
      `pgws.disconnect to close, ${runs} runs, ${perInstance} sockets per instance, PostgreSQL ${db.version}; ms from the statement being sent`,
      '',
      '| | min / median / p90 / max (ms) |',
      '|---|---|',
      line('`SELECT pgws.disconnect(...)` returns (committed)', rows.call),
      line('instance A: first close seen by a client', rows.aFirst),
      line('instance A: last close seen by a client', rows.aLast),
      line('instance B: first close seen by a client', rows.bFirst),
      line('instance B: last close seen by a client', rows.bLast),
      '',
    ].join('\n'),
  );
} finally {
  for (const server of servers) await server[Symbol.asyncDispose]();
  await sql.end({ timeout: 1 });
  await db.stop();
}
