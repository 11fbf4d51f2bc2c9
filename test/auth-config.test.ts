/**
 * `[auth]` as the command line sees it, in real processes: a config error exits 2 with one line
 * naming the key before anything listens, `bun run check` describes the keys without printing a
 * secret, and `bun run token` mints a token the bridge accepts with exactly the grants asked for.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';
import { databaseUrl, startBridge, within } from './harness.ts';
import { openMux } from './mux.ts';
import { nowSeconds, SECRET, SECRET_ENV } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const ROOT = join(import.meta.dir, '..');

/** Runs `argv` in the checkout with `env` added; bounded, so a process that starts serving fails the test. */
async function run(argv: string[], env: Record<string, string> = {}) {
  const child = Bun.spawn(argv, {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl(), PORT: '0', HOST: '127.0.0.1', ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  try {
    const [stdout, stderr, code] = await within(output, 20_000, `${argv.join(' ')} to exit`);
    return { stdout, stderr, code };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

/** Writes `channels.toml` (and `files`) into a fresh temp dir; returns the config's path. */
function configFile(toml: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgws-auth-config-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(join(dir, 'channels.toml'), toml);
  return join(dir, 'channels.toml');
}

/** stderr without what `bun run` itself adds: its `$ command` echo and its `error: script … exited` line. */
const ownLines = (stderr: string) =>
  stderr.split('\n').filter((line) => line !== '' && !/^\$ |^error: script "\w+" exited with code \d+$/.test(line));

const SHORT = 'x'.repeat(31);
const secret = { [SECRET_ENV]: SECRET };

describe('an [auth] config error', () => {
  test.each([
    [
      'no key source',
      '[auth]\naudience = "a"\n',
      {},
      {},
      'auth: no key source: set one of secret_env, jwks_file or jwks_url',
    ],
    [
      'two key sources',
      `[auth]\nsecret_env = "${SECRET_ENV}"\njwks_file = "keys.json"\n`,
      {},
      secret,
      'auth: set exactly one of secret_env, jwks_file or jwks_url, not several',
    ],
    [
      'secret_env naming an unset variable',
      '[auth]\nsecret_env = "PGWS_TEST_UNSET_SECRET"\n',
      {},
      {},
      'auth.secret_env: environment variable PGWS_TEST_UNSET_SECRET is not set',
    ],
    [
      'a secret of 31 bytes',
      `[auth]\nsecret_env = "${SECRET_ENV}"\n`,
      {},
      { [SECRET_ENV]: SHORT },
      `auth.secret_env: the secret in ${SECRET_ENV} is 31 bytes; HS256 needs at least 32`,
    ],
    [
      'a jwks_file that does not exist',
      '[auth]\njwks_file = "missing.json"\n',
      {},
      {},
      /^auth\.jwks_file: cannot read missing\.json as JSON: .*(ENOENT|No such file)/,
    ],
    [
      'a jwks_file that is not JSON',
      '[auth]\njwks_file = "keys.json"\n',
      { 'keys.json': 'keys: [' },
      {},
      /^auth\.jwks_file: cannot read keys\.json as JSON: /,
    ],
    [
      'a jwks_file that is not a JWKS',
      '[auth]\njwks_file = "keys.json"\n',
      { 'keys.json': '{"keys":"nope"}' },
      {},
      'auth.jwks_file: keys.json is not a JWKS (an object with a "keys" array)',
    ],
    [
      'a jwks_file with only a symmetric key',
      '[auth]\njwks_file = "keys.json"\n',
      { 'keys.json': '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}' },
      {},
      'auth.jwks_file: keys.json holds no public signing key',
    ],
    ['a jwks_url that is not a URL', '[auth]\njwks_url = "keys.json"\n', {}, {}, /^auth\.jwks_url: .*absolute URL/],
  ] as const)('with %s exits 2 with one line naming the key', async (_, toml, files, env, expected) => {
    const file = configFile(toml, files);
    for (const args of [['--check'], []]) {
      const result = await run(['bun', 'src/main.ts', ...args, '--config', file], env);
      expect(result.code).toBe(2);
      const lines = result.stderr.split('\n');
      expect(lines).toHaveLength(2);
      const line = (lines[0] ?? '').replace(/^channels\.toml: /, '');
      if (typeof expected === 'string') expect(line).toBe(expected);
      else expect(line).toMatch(expected);
      expect(result.stderr + result.stdout).not.toContain(SHORT);
      expect(result.stdout).not.toContain('ready');
    }
  });
});

describe('bun run check with [auth]', () => {
  test('reports auth as configured, with its settings, without printing the secret', async () => {
    const toml = `[server]\nallowed_origins = ["https://app.example"]\n[auth]\nsecret_env = "${SECRET_ENV}"\naudience = "pgws"\nissuer = "https://issuer.test/"\n[channels.news]\npublic = true\n`;
    const result = await run(['bun', 'run', 'check', '--config', configFile(toml)], secret);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      `auth: HS256 secret from ${SECRET_ENV} (${SECRET.length} bytes); audience pgws; issuer https://issuer.test/; no tokens in URLs; Origin one of https://app.example\n`,
    );
    expect(result.stdout).toContain('news: raw text, public');
    expect(result.stdout + result.stderr).not.toContain(SECRET);
    expect(result.stdout + result.stderr).not.toContain(SECRET.slice(0, 16));
  });

  test('describes a jwks_file by its keys and algorithms', async () => {
    const jwks = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k1' }] });
    const file = configFile('[auth]\njwks_file = "keys.json"\nquery_token = true\n', { 'keys.json': jwks });
    const result = await run(['bun', 'run', 'check', '--config', file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      'auth: JWKS file keys.json (1 keys; ES256); tokens also accepted in ?token= (query_token = true); any Origin',
    );
  });
});

describe('bun run token', () => {
  const TOML = `[auth]\nsecret_env = "${SECRET_ENV}"\naudience = "pgws"\nissuer = "dev"\n[channels.orders]\npublish = true\n[channels.chat]\npublish = true\n`;

  test('mints a token the bridge accepts with exactly the grants asked for', async () => {
    const file = configFile(TOML);
    const argv = ['bun', 'run', 'token', '--config', file, '--sub', 'alice', '--channels', 'orders:r,chat*:rw'];
    const result = await run([...argv, '--ttl', '1h'], secret);
    expect(result.code).toBe(0);
    const token = result.stdout.trim();
    const { payload } = await jwtVerify(token, new TextEncoder().encode(SECRET), { audience: 'pgws', issuer: 'dev' });
    expect(payload).toMatchObject({ sub: 'alice', channels: { orders: 'r', 'chat*': 'rw' } });
    expect(Math.abs(Number(payload.exp) - (nowSeconds() + 3600))).toBeLessThanOrEqual(5);

    await using t = await startBridge(TOML, { env: secret });
    using socket = await openMux(t.url, { bearer: token });
    expect(await socket.next()).toMatchObject({ type: 'ready', subject: 'alice', expires: payload.exp });
    const answers: string[] = [];
    const ask = async (frame: object) => {
      socket.send(frame);
      const answer = await socket.next();
      answers.push(answer.type === 'error' ? `${answer['code']}` : answer.type);
    };
    await ask({ type: 'subscribe', channel: 'orders' });
    await ask({ type: 'subscribe', channel: 'chatroom' });
    await ask({ type: 'subscribe', channel: 'other' });
    await ask({ type: 'publish', channel: 'orders', payload: 'x' });
    expect(answers).toEqual(['subscribed', 'subscribed', 'forbidden', 'forbidden']);
  });

  test.each([
    [['--channels', 'orders:r'], "--sub: the token's subject is required"],
    [['--sub', 'alice', '--ttl', '1y'], '--ttl: expected a duration such as 90s, 15m, 1h or 7d, got "1y"'],
    [['--sub', 'alice', '--channels', 'orders:x'], '--channels: expected NAME:r, NAME:w or NAME:rw, got "orders:x"'],
    [['--sub', 'alice', '--channels', ':r'], '--channels: expected NAME:r, NAME:w or NAME:rw, got ":r"'],
    [['--sub', 'alice', '--frobnicate'], expect.stringContaining('--frobnicate')],
    [['--sub'], expect.stringContaining('--sub')],
    [['--sub', 'alice', 'extra'], expect.stringContaining('extra')],
  ])('with %p exits 2 with one line', async (args, line) => {
    const result = await run(['bun', 'run', 'token', '--config', configFile(TOML), ...args], secret);
    expect({ code: result.code, stderr: ownLines(result.stderr) }).toEqual({ code: 2, stderr: [line] });
    expect(result.stdout).toBe('');
  });

  test('with a config whose [auth] has no secret_env exits 2 saying it signs with secret_env only', async () => {
    const file = configFile('[auth]\njwks_url = "https://keys.example/jwks.json"\n');
    const result = await run(['bun', 'run', 'token', '--config', file, '--sub', 'alice']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('secret_env');
  });
});
