/**
 * The single binary (`bun run build`), run as a user would: copied alone into an empty folder with a config
 * file and a schema module, no node_modules, with only DATABASE_URL set.
 */
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { databaseUrl, uniqueChannel, within } from './harness.ts';
import { connectMux } from './mux.ts';
import { freshGet, spawnServer } from './process.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const root = join(import.meta.dir, '..');
const folder = mkdtempSync(join(tmpdir(), 'pgws-binary-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

let built: Promise<string> | undefined;
/** Builds the binary once for the file. */
const binaryPath = () => {
  built ??= build();
  return built;
};

async function build(): Promise<string> {
  const out = join(folder, 'build', 'pg-notify-ws');
  const child = Bun.spawn(['bun', join(root, 'src', 'cli', 'build.ts'), '--out', out], {
    stdout: 'pipe',
    stderr: 'pipe',
  });
  expect(await child.exited).toBe(0);
  return out;
}

test('the single binary serves inline and module schemas, the console and /client.js from an empty folder', async () => {
  const binary = await binaryPath();
  const run = join(folder, 'run');
  mkdirSync(join(run, 'schemas'), { recursive: true });
  copyFileSync(binary, join(run, 'pg-notify-ws'));
  const [inline, module] = [uniqueChannel('inline'), uniqueChannel('module')];
  writeFileSync(
    join(run, 'schemas', 'note.ts'),
    "import * as v from 'valibot';\nexport default v.object({ text: v.string(), n: v.optional(v.number(), 7) });\n",
  );
  const toml =
    `[channels."${inline}".schema]\ntype = "object"\nrequired = ["q"]\n[channels."${inline}".schema.properties.w]\ntype = "string"\ndefault = "main"\n` +
    `[channels."${module}"]\nschema = "./schemas/note.ts"\n`;
  await using server = await spawnServer({
    toml,
    cwd: run,
    command: [join(run, 'pg-notify-ws')],
    bareEnv: true,
    env: { DATABASE_URL: databaseUrl() },
  });
  const { url } = server;
  expect(await (await fetch(new URL('/', url))).text()).toContain('<title>pg-notify-ws console');
  expect((await fetch(new URL('/client.js', url))).status).toBe(200);
  using client = await connectMux(url);
  await client.subscribe(inline);
  await client.subscribe(module);
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  await sql`SELECT pg_notify(${inline}, '{"q":1}'), pg_notify(${module}, '{"text":"hi"}')`;
  await sql.end();
  expect((await client.received(inline, 1))[0]?.['payload']).toEqual({ q: 1, w: 'main' });
  expect((await client.received(module, 1))[0]?.['payload']).toEqual({ text: 'hi', n: 7 });
  expect(await within(server.signal('SIGTERM'), 6000, 'the binary to exit')).toBe(0);
});

test('without a database URL the binary says so in one line and exits 2 (the embedded database is not in it)', async () => {
  const binary = await binaryPath();
  const empty = mkdtempSync(join(folder, 'empty-'));
  writeFileSync(join(empty, 'channels.toml'), '');
  const child = Bun.spawn([binary], { cwd: empty, env: { PATH: '/usr/bin:/bin' }, stdout: 'pipe', stderr: 'pipe' });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  expect(code).toBe(2);
  expect(stderr).toBe(
    'no database configured: set DATABASE_URL or [database] url (the embedded development PostgreSQL is a `bun run start` feature, not in the single binary)\n',
  );
});

test('with workers = 2 the binary runs two processes on one port (a worker is the binary again, with its arguments)', async () => {
  const binary = await binaryPath();
  const run = mkdtempSync(join(folder, 'workers-'));
  await using server = await spawnServer({
    toml: '[server]\nworkers = 2\n',
    cwd: run,
    command: [binary],
    bareEnv: true,
    env: { DATABASE_URL: databaseUrl() },
  });
  const { url } = server;
  const pids = new Set<number>();
  await within(
    (async () => {
      while (pids.size < 2) {
        const body = JSON.parse(await freshGet(url, '/healthz')) as { pid: number; status: string };
        if (body.status === 'ok') pids.add(body.pid);
      }
    })(),
    15_000,
    'both processes to answer',
  );
  expect(pids.size).toBe(2);
  expect(await within(server.signal('SIGTERM'), 6000, 'the binary to exit')).toBe(0);
});
