/**
 * The ingest scenario's writers (bench/ingest.ts), in a process of their own so that the client timing their
 * messages is not queued behind 64 connections' work in one event loop. Argument: the case as JSON. Prints
 * `ready` once every connection is open, starts on a line on stdin, then prints one JSON line: how many
 * transactions committed and, per message key, when its COMMIT was sent (performance.timeOrigin + now, which
 * the orchestrator's clock shares).
 */
import postgres from 'postgres';

/** The case, as bench/ingest.ts passes it. */
export interface WritersCase {
  readonly url: string;
  readonly kind: 'insert' | 'pg_notify' | 'notify' | 'replication';
  readonly writers: number;
  readonly channels: readonly string[];
  readonly seconds: number;
  readonly table: string;
}

const PAD = 'x'.repeat(100);
const c = JSON.parse(process.argv[2] ?? '{}') as WritersCase;
const options = { max: 1, onnotice: () => {}, connection: { application_name: 'bench_ingest_writer' } };
const conns = Array.from({ length: c.writers }, () => postgres(c.url, options));
await Promise.all(conns.map((sql) => sql`SELECT 1`));
process.stdout.write('ready\n');
for await (const _ of console) break;

const committing: Record<string, number> = {};
const end = performance.now() + c.seconds * 1000;
const started = performance.now();
const counts = await Promise.all(
  conns.map(async (sql, i) => {
    const channel = c.channels[i % c.channels.length] ?? '';
    let n = 0;
    for (; performance.now() < end; n++) {
      const k = `${i}:${n}`;
      const payload = JSON.stringify({ k, p: PAD.slice(0, 100 - 10 - k.length) });
      await sql.begin(async (tx) => {
        await tx`INSERT INTO ${tx(c.table)} (writer, body) VALUES (${i}, ${payload})`;
        if (c.kind === 'pg_notify') await tx`SELECT pg_notify(${channel}, ${payload})`;
        else if (c.kind !== 'insert') await tx`SELECT pgws.send(${channel}, ${payload})`;
        // From here the writer's COMMIT: the latency is commit to client.
        committing[k] = performance.timeOrigin + performance.now();
      });
    }
    return n;
  }),
);
const seconds = (performance.now() - started) / 1000;
await Promise.all(conns.map((sql) => sql.end({ timeout: 5 })));
process.stdout.write(`${JSON.stringify({ sent: counts.reduce((a, b) => a + b, 0), seconds, committing })}\n`);
