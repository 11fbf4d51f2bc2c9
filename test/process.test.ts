import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { connect, upgradeStatus } from './client.ts';
import { databaseUrl, metric, uniqueChannel, within } from './harness.ts';
import { spawnServer } from './process.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const MAIN = join(import.meta.dir, '..', 'src', 'main.ts');
const withDatabase = () => ({ DATABASE_URL: databaseUrl() });

/** The URL the server logged for its embedded database (the line tells the user to `psql` it). */
function embeddedUrl(lines: readonly string[]): string {
  const line = lines.find((l) => l.includes('embedded PostgreSQL ready: psql postgres://'));
  const url = line === undefined ? undefined : (JSON.parse(line) as { url?: string }).url;
  if (url === undefined) throw new Error(`no embedded PostgreSQL URL in the log:\n${lines.join('\n')}`);
  return url;
}

async function run(args: string[], env: Record<string, string> = {}) {
  const child = Bun.spawn(['bun', MAIN, ...args], {
    cwd: join(import.meta.dir, 'fixtures'),
    env: { ...process.env, ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { stdout, stderr, code };
}

describe('the server process', () => {
  test.each(['SIGTERM', 'SIGINT'] as const)(
    'on %s closes every socket with 1001 and exits 0 within 5 seconds',
    async (signal) => {
      await using server = await spawnServer({ toml: '', env: withDatabase() });
      using a = await connect(server.wsUrl(uniqueChannel()));
      using b = await connect(server.wsUrl(uniqueChannel()));
      const exited = server.signal(signal);
      expect((await within(a.closed, 5000, 'close')).code).toBe(1001);
      expect((await within(b.closed, 5000, 'close')).code).toBe(1001);
      expect(await within(exited, 5000, 'exit')).toBe(0);
    },
  );

  test('logs a ready line naming the URL, with PORT and HOST overriding the file', async () => {
    await using server = await spawnServer({ toml: '[server]\nport = 8080\nhost = "0.0.0.0"\n', env: withDatabase() });
    expect(server.url.hostname).toBe('127.0.0.1');
    expect(server.url.port).not.toBe('8080');
    const ready = server.lines
      .map((line) => JSON.parse(line))
      .find((entry) => String(entry.message).startsWith('ready'));
    expect(ready).toMatchObject({ level: 'info', scope: 'bridge', url: server.url.href, host: '127.0.0.1' });
  });

  test('the ready line names the address it binds, 0.0.0.0, beside the local URL it suggests', async () => {
    await using server = await spawnServer({ toml: '', env: { ...withDatabase(), HOST: '0.0.0.0' } });
    const ready = server.lines.map((line) => JSON.parse(line)).find((entry) => entry.message.startsWith('ready'));
    const { port } = server.url;
    expect(ready.message).toBe(
      `ready: listening on 0.0.0.0:${port} (console http://127.0.0.1:${port}/, WebSocket ws://127.0.0.1:${port}/<channel>)`,
    );
  });

  test('fails fast on a config error: exit 2, one precise line on stderr, nothing listening', async () => {
    const result = await run(['--config', 'unknown-keyword.toml'], { ...withDatabase(), PORT: '0' });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'unknown-keyword.toml: channels.orders.schema.properties.id: unknown keyword "frobnicate"\n',
    );
    expect(result.stdout).not.toContain('ready');
  });

  test('a port in use is one line saying what to do, no stack trace, exit 1', async () => {
    using taken = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
    const result = await run(['--config', 'good.toml'], {
      ...withDatabase(),
      HOST: '127.0.0.1',
      PORT: String(taken.port),
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `port ${taken.port} on 127.0.0.1 is already in use: stop the other process, or choose another port with PORT or [server] port\n`,
    );
  });

  test.if(process.getuid?.() === 0)(
    'as root, a directory the embedded database cannot enter is one line naming it, no stack trace, exit 1',
    async () => {
      const home = mkdtempSync(join(tmpdir(), 'pgws-blocked-'));
      chmodSync(home, 0o700);
      writeFileSync(join(home, 'channels.toml'), '');
      const child = Bun.spawn(['bun', MAIN], {
        cwd: home,
        env: { ...process.env, DATABASE_URL: '', PORT: '0' },
        stdout: 'pipe',
        stderr: 'pipe',
      });
      const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
      expect(code).toBe(1);
      expect(stderr.split('\n')).toEqual([expect.stringContaining(`cannot enter ${home}`), '']);
      expect(stderr).not.toContain('    at ');
    },
  );

  test('fails fast on a bad LOG_LEVEL with one line naming the choices', async () => {
    const result = await run(['--config', 'good.toml'], { ...withDatabase(), LOG_LEVEL: 'verbose' });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('LOG_LEVEL: expected one of debug, info, warn, error, got "verbose"\n');
  });

  test('fails fast on a missing config file', async () => {
    const result = await run(['--config', 'nope.toml'], withDatabase());
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('nope.toml: cannot read the config file (use --config FILE)\n');
  });

  test('at its open-file limit a process refuses upgrades with 503 file_limit and Retry-After, not broken handshakes', async () => {
    // 160 files, 64 kept back: 96 sockets. Every socket that opens must work; the rest must be told.
    await using server = await spawnServer({
      toml: '',
      env: withDatabase(),
      command: ['sh', '-c', `ulimit -n 160 && exec bun ${MAIN} --config channels.toml`],
    });
    const wsUrl = server.wsUrl(uniqueChannel());
    const clients = [];
    for (let i = 0; i < 96; i++) clients.push(await connect(wsUrl));
    const refused = await upgradeStatus(wsUrl);
    expect(refused).toMatchObject({ status: 503, retryAfter: '1' });
    expect(refused.body).toContain('open-file limit');
    expect(await metric(server.url, 'pgws_upgrades_refused_total', { reason: 'file_limit' })).toBe(1);
    for (const client of clients) client.socket.close();
  });
});

describe('bun run check', () => {
  test('validates a config without connecting and lists its channels', async () => {
    const result = await run(['--check', '--config', 'good.toml'], {
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('good.toml: OK');
    expect(result.stdout).toContain('orders: schema module');
    expect(result.stdout).toContain('"Order Events": inline schema - inline schema');
    expect(result.stdout).toContain('plain: raw text, history 10, clients may publish');
  });

  test('exits 2 with the same precise message as startup', async () => {
    const result = await run(['--check', '--config', 'bad-pattern.toml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toStartWith(
      'bad-pattern.toml: channels."Order Events".schema: "pattern" is not a valid regular expression',
    );
  });
});

describe('the zero-setup path', () => {
  test('with no database configured, starts an embedded PostgreSQL in .data/ that keeps its data', async () => {
    const env = { DATABASE_URL: '' };
    let cwd: string;
    {
      await using first = await spawnServer({ toml: '', env, readyMs: 60_000 });
      cwd = first.cwd;
      const url = embeddedUrl(first.lines);
      expect(first.lines.some((l) => l.includes('embedded development PostgreSQL') && l.includes('DATABASE_URL'))).toBe(
        true,
      );
      expect(existsSync(join(cwd, '.data', 'postgres', 'PG_VERSION'))).toBe(true);
      const channel = uniqueChannel();
      using client = await connect(first.wsUrl(channel));
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      await sql`CREATE TABLE kept (id int)`;
      await sql`SELECT pg_notify(${channel}, 'from psql')`;
      await sql.end();
      expect(await client.next()).toBe('from psql');
      expect(await within(first.signal('SIGTERM'), 5000, 'exit')).toBe(0);
    }
    // Same working directory again: the data directory is reused, not re-initialised.
    await using second = await spawnServer({ toml: '', env, readyMs: 60_000, cwd });
    const sql = postgres(embeddedUrl(second.lines), { max: 1, onnotice: () => {} });
    expect((await sql`SELECT to_regclass('kept') IS NOT NULL AS kept`)[0]?.['kept']).toBe(true);
    await sql.end();
    // A clean exit stops the embedded server too (PostgreSQL removes postmaster.pid when it shuts down).
    expect(await within(second.signal('SIGTERM'), 5000, 'exit')).toBe(0);
    expect(existsSync(join(cwd, '.data', 'postgres', 'postmaster.pid'))).toBe(false);
  }, 120_000);
});
