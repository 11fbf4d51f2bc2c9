/**
 * `[database] ingest = "replication"` in a whole bridge: the startup refusals (a real process, exit 2, one line
 * that says what to change) and /readyz while the replication connection is down.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { createPublication, PUBLICATION } from '../src/db/publication.ts';
import { databaseUrl, startBridge, uniqueChannel, waitFor } from './harness.ts';
import { connectMux } from './mux.ts';
import { installPgws, scratchDatabase } from './pgws.ts';
import { everyWorkerReady, freshGet, spawnServer } from './process.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const MAIN = join(import.meta.dir, '..', 'src', 'main.ts');
const NOTIFY_INSTEAD = 'or set [database] ingest = "notify"';

let sql: postgres.Sql;
beforeAll(async () => {
  await installPgws();
  sql = postgres(databaseUrl(), { max: 2, onnotice: () => {} });
});
afterAll(() => sql.end({ timeout: 1 }));

/** The config of a replication-mode bridge with one durable channel. */
const replicationToml = (channel = 'orders') =>
  `[database]\ningest = "replication"\n\n[channels.${JSON.stringify(channel)}]\ndurable = true\n`;

/** Runs the server against `url` until it exits; its exit code and what it wrote to stderr. */
async function startAndExit(url: string): Promise<{ code: number; stderr: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'pgws-ingest-'));
  writeFileSync(join(cwd, 'channels.toml'), replicationToml());
  try {
    const child = Bun.spawn(['bun', MAIN, '--config', 'channels.toml'], {
      cwd,
      env: { ...process.env, DATABASE_URL: url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'error' },
      stdout: 'ignore',
      stderr: 'pipe',
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    clearTimeout(killer);
    return { code, stderr };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

/** A login role of the test's own on the test server, dropped afterwards; `url(base)` connects as it. */
async function role(name: string, attributes: string) {
  const role = `${name}_${process.pid}`;
  await sql.unsafe(`DROP ROLE IF EXISTS ${role}`);
  await sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'secret' ${attributes}`);
  return {
    name: role,
    url(base = databaseUrl()) {
      const url = new URL(base);
      url.username = role;
      url.password = 'secret';
      return url.href;
    },
    async [Symbol.asyncDispose]() {
      await sql.unsafe(`DROP OWNED BY ${role}`).catch(() => {});
      await sql.unsafe(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
    },
  };
}

/** Makes the publication as the superuser when no test made it yet, as an operator would once. */
async function publish(on: postgres.Sql = sql) {
  const [row] = await on`SELECT current_setting('server_version_num')::int AS version,
    EXISTS (SELECT 1 FROM pg_publication WHERE pubname = ${PUBLICATION}) AS published`;
  if (row?.['published'] !== true) await on.unsafe(createPublication(Number(row?.['version']))).catch(() => {});
}

describe('startup refusals: one line that says what to change, exit 2', () => {
  test('a role without REPLICATION', async () => {
    await using norepl = await role('pgws_norepl', '');
    const { code, stderr } = await startAndExit(norepl.url());
    expect({ code, stderr }).toEqual({
      code: 2,
      stderr: `[database] ingest = "replication" needs a role with the REPLICATION attribute, and "${norepl.name}" has not: run ALTER ROLE "${norepl.name}" REPLICATION as a superuser, ${NOTIFY_INSTEAD}\n`,
    });
  });

  test('a server with wal_level = replica', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pgws-replica-'));
    await using db = await startEmbeddedPostgres({ dataDir, persistent: false, settings: { wal_level: 'replica' } });
    await installPgws(db.url);
    const { code, stderr } = await startAndExit(db.url);
    expect({ code, stderr }).toEqual({
      code: 2,
      stderr: `[database] ingest = "replication" needs wal_level = logical, and the server has replica: run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL, ${NOTIFY_INSTEAD}\n`,
    });
  });

  test('a role that may not create the missing publication', async () => {
    await using db = await scratchDatabase();
    await installPgws(db.url);
    await using nopub = await role('pgws_nopub', 'REPLICATION');
    const { code, stderr } = await startAndExit(nopub.url(db.url));
    expect(code).toBe(2);
    expect(stderr.split('\n')).toEqual([expect.any(String), '']);
    expect(stderr).toStartWith(
      `[database] ingest = "replication" needs the publication pgws_messages, and role "${nopub.name}" may not create it (`,
    );
    expect(stderr).toEndWith(
      `: run \`CREATE PUBLICATION pgws_messages FOR TABLE pgws.messages (channel, seq) WITH (publish = 'insert')\` as the owner of pgws.messages, ${NOTIFY_INSTEAD}\n`,
    );
  });
});

describe('readiness', () => {
  test('/readyz answers 503 while the replication connection is down, and once it is back what was sent meanwhile arrives', async () => {
    await publish();
    await using replicator = await role('pgws_replicator', 'REPLICATION');
    await sql.unsafe(`GRANT EXECUTE ON FUNCTION pgws.wake(text[], boolean) TO ${replicator.name}`);
    await sql.unsafe(`GRANT SELECT ON pgws.messages TO ${replicator.name}`);
    const channel = uniqueChannel('ready');
    await using t = await startBridge(`[channels.${channel}]\ndurable = true\n`, {
      databaseUrl: replicator.url(),
      database: 'ingest = "replication"\nreconnect_min_ms = 20\nreconnect_max_ms = 100',
    });
    const readyz = async () => {
      const response = await fetch(new URL('/readyz', t.url));
      return { status: response.status, ingest: ((await response.json()) as { ingest: string }).ingest };
    };
    await waitFor(async () => (await readyz()).status === 200, 20_000, 'ready with replication up');
    expect(await readyz()).toEqual({ status: 200, ingest: 'up' });
    using client = await connectMux(t.url);
    await client.subscribe(channel);

    // Kept down: the role may no longer replicate, so every reconnect is refused until it may again.
    await sql.unsafe(`ALTER ROLE ${replicator.name} NOREPLICATION`);
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE backend_type = 'walsender' AND usename = ${replicator.name}`;
    await waitFor(async () => (await readyz()).status === 503, 10_000, '/readyz to answer 503');
    expect(await readyz()).toEqual({ status: 503, ingest: 'down' });
    await waitFor(
      () => t.logs.some((line) => line.includes(`run ALTER ROLE \\"${replicator.name}\\" REPLICATION`)),
      10_000,
      'the refusal in the log',
    );
    expect(await readyz()).toEqual({ status: 503, ingest: 'down' });
    // The LISTEN connection stays up and nothing is written after this: only the catch-up of the new
    // replication stream can deliver these.
    for (const payload of ['while', 'replication', 'was down']) await sql`SELECT pgws.send(${channel}, ${payload})`;

    await sql.unsafe(`ALTER ROLE ${replicator.name} REPLICATION`);
    await waitFor(async () => (await readyz()).status === 200, 20_000, '/readyz to answer 200 again');
    expect(await readyz()).toEqual({ status: 200, ingest: 'up' });
    const got = await client.received(channel, 3);
    expect(got.map((frame) => [frame.seq, frame.payload])).toEqual([
      [1, 'while'],
      [2, 'replication'],
      [3, 'was down'],
    ]);
  });
});

describe('workers', () => {
  test('with workers = 3, one replication connection for the instance, and every process delivers', async () => {
    const channel = uniqueChannel('workers');
    await using server = await spawnServer({
      toml: `[server]\nworkers = 3\n\n${replicationToml(channel)}`,
      env: { DATABASE_URL: databaseUrl() },
    });
    await everyWorkerReady(server.url, 3);
    await waitFor(
      async () => (await sql`SELECT wake FROM pgws.streams WHERE channel = ${channel}`)[0]?.['wake'] === false,
      20_000,
      'replication up',
    );
    const mine = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE backend_type = 'walsender' AND application_name = 'pg-notify-ws replication'
        AND datname = current_database() AND client_port IS NOT NULL`;
    expect(mine[0]?.['n']).toBe(1);
    // Fresh connections: the kernel spreads them over the processes sharing the port.
    const clients = await Promise.all(Array.from({ length: 6 }, () => connectMux(server.url)));
    try {
      for (const client of clients) await client.subscribe(channel);
      for (const payload of ['a', 'b', 'c']) await sql`SELECT pgws.send(${channel}, ${payload})`;
      for (const client of clients)
        expect((await client.received(channel, 3)).map((frame) => frame.payload)).toEqual(['a', 'b', 'c']);
    } finally {
      for (const client of clients) client[Symbol.dispose]();
    }
  });
});

describe('workers and readiness', () => {
  test("every worker's /readyz follows the primary's replication connection", async () => {
    await publish();
    await using replicator = await role('pgws_replicator', 'REPLICATION');
    await sql.unsafe(`GRANT EXECUTE ON FUNCTION pgws.wake(text[], boolean) TO ${replicator.name}`);
    await sql.unsafe(`GRANT SELECT ON pgws.messages TO ${replicator.name}`);
    const channel = uniqueChannel('wready');
    await using server = await spawnServer({
      toml: `[server]\nworkers = 2\n\n[database]\ningest = "replication"\nreconnect_min_ms = 20\nreconnect_max_ms = 100\n\n[channels.${channel}]\ndurable = true\n`,
      env: { DATABASE_URL: replicator.url() },
    });
    await everyWorkerReady(server.url, 2);
    // Fresh connections land on either process: a dozen in a row all answering alike is every process.
    const all = async (status: number) => {
      const answers = await Promise.all(Array.from({ length: 12 }, () => freshGet(server.url, '/readyz')));
      return answers.every((text) => (JSON.parse(text) as { ready: boolean }).ready === (status === 200));
    };
    await waitFor(() => all(200), 20_000, 'every process ready with replication up');
    await sql.unsafe(`ALTER ROLE ${replicator.name} NOREPLICATION`);
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE backend_type = 'walsender' AND usename = ${replicator.name}`;
    await waitFor(() => all(503), 10_000, 'every process to answer not ready');
    await sql.unsafe(`ALTER ROLE ${replicator.name} REPLICATION`);
    await waitFor(() => all(200), 20_000, 'every process ready again');
  });
});
