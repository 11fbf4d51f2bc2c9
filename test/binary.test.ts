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
import { freshGet } from './process.ts';

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

/** Starts the binary in `cwd` with only PATH and DATABASE_URL; resolves with its process and local URL. */
async function startBinary(binary: string, cwd: string, args: string[] = []) {
  const child = Bun.spawn([binary, ...args], {
    cwd,
    env: { PATH: '/usr/bin:/bin', DATABASE_URL: databaseUrl(), PORT: '0', HOST: '127.0.0.1' },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const reader = child.stdout.getReader();
  let text = '';
  const url = await within(
    (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the binary exited: ${text}${await new Response(child.stderr).text()}`);
        text += new TextDecoder().decode(value);
        const line = text.split('\n').find((l) => l.includes('"ready: listening'));
        if (line !== undefined) return new URL(JSON.parse(line).url);
      }
    })(),
    20_000,
    'the ready line',
  ).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  return { child, url };
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
  writeFileSync(
    join(run, 'channels.toml'),
    `[channels."${inline}".schema]\ntype = "object"\nrequired = ["q"]\n[channels."${inline}".schema.properties.w]\ntype = "string"\ndefault = "main"\n` +
      `[channels."${module}"]\nschema = "./schemas/note.ts"\n`,
  );
  const { child, url } = await startBinary(join(run, 'pg-notify-ws'), run);
  try {
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
    child.kill('SIGTERM');
    expect(await within(child.exited, 6000, 'the binary to exit')).toBe(0);
  } finally {
    child.kill('SIGKILL');
  }
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
  writeFileSync(join(run, 'w.toml'), '[server]\nworkers = 2\n');
  const { child, url } = await startBinary(binary, run, ['--config', 'w.toml']);
  try {
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
    child.kill('SIGTERM');
    expect(await within(child.exited, 6000, 'the binary to exit')).toBe(0);
  } finally {
    child.kill('SIGKILL');
  }
});
