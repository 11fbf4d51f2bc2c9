/**
 * The `pg-notify-ws` command (src/bin.ts, package.json `bin`): each subcommand reaches its entry point with
 * the arguments after it, the bridge starts by default, and the workers it spawns run through it too. From
 * another project, `bunx pg-notify-ws` is exercised by test/outside.test.ts.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import postgres from 'postgres';
import { INSTALL_SQL } from '../src/db/script.ts';
import { triggerSql } from '../src/db/trigger.ts';
import { connect } from './client.ts';
import { databaseUrl, uniqueChannel, waitFor } from './harness.ts';
import { spawnServer } from './process.ts';
import { listeningProcesses } from './sockets.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const root = join(import.meta.dir, '..');
const BIN = join(root, 'src', 'bin.ts');

/** Runs the command in the checkout with `args`, without a database in its environment. */
function run(...args: string[]) {
  const result = Bun.spawnSync([BIN, ...args], { cwd: root, env: { PATH: process.env['PATH'] ?? '' } });
  return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

describe('pg-notify-ws subcommands', () => {
  test('sql prints the install script of pgws.notify', () => {
    expect(run('sql')).toEqual({ code: 0, stdout: INSTALL_SQL, stderr: '' });
  });

  test('trigger prints the trigger with its flags', () => {
    const printed = run('trigger', '--table', 'orders', '--channel', 'orders', '--events', 'insert');
    expect(printed).toEqual({
      code: 0,
      stdout: triggerSql({ schema: 'public', table: 'orders', channel: 'orders', events: ['insert'] }),
      stderr: '',
    });
  });

  test('check validates the config named by --config, and names an unreadable one with exit 2', () => {
    const checked = run('check', '--config', 'channels.toml');
    expect(checked.code).toBe(0);
    expect(checked.stdout).toContain('channels.toml: OK');
    expect(run('check', '--config', 'nope.toml')).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('nope.toml'),
    });
  });

  test('types writes the Channels type', () => {
    const written = run('types', '--config', 'channels.toml');
    expect(written.code).toBe(0);
    expect(written.stdout).toContain('export type Channels = {');
  });

  test('an unknown subcommand exits 2 with the usage; --help prints it and exits 0', () => {
    const unknown = run('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toStartWith('pg-notify-ws: unknown command "frobnicate"\nusage: pg-notify-ws');
    const help = run('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toStartWith('usage: pg-notify-ws [start]');
  });
});

describe('pg-notify-ws start', () => {
  test('starts the bridge by default, its workers through the same command, and stops on SIGTERM with 0', async () => {
    const channel = uniqueChannel('bin');
    await using server = await spawnServer({
      toml: '[server]\nworkers = 2\n',
      env: { DATABASE_URL: databaseUrl() },
      command: [BIN, '--config', 'channels.toml'],
    });
    // `workers = 2`: the primary and one worker it spawned with the command's arguments share the port.
    const port = Number(server.url.port);
    await waitFor(() => listeningProcesses(port, server.process.pid).length === 2, 20_000, 'two processes to listen');
    using client = await connect(server.wsUrl(channel));
    const delivered = client.next(10_000);
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    await sql`SELECT pg_notify(${channel}, 'through the bin')`;
    await sql.end({ timeout: 1 });
    expect(await delivered).toBe('through the bin');
    expect(await server.signal('SIGTERM')).toBe(0);
  });
});
