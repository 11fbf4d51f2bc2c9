/**
 * Public-key sources: `jwks_file` (a local JWKS beside the config) and `jwks_url` (fetched and cached by
 * jose's remote key set, here from a `Bun.serve` on 127.0.0.1). The algorithm is the key's: an HS256
 * token keyed with the public key's own bytes, the classic confusion, is refused.
 */
import { afterEach, describe, expect, setDefaultTimeout, setSystemTime, test } from 'bun:test';
import { exportSPKI, importJWK, SignJWT } from 'jose';
import { startBridge, type TestBridge, within } from './harness.ts';
import { openMux } from './mux.ts';
import { jwksOf, nowSeconds, type RsaKey, rsaKey, serveJwks } from './tokens.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

/** What the bridge answers to `token` at the upgrade: the `ready` subject, or the close. */
async function answerTo(t: TestBridge, token: string): Promise<string> {
  using socket = await openMux(t.url, { bearer: token });
  const outcome = await within(
    Promise.race([socket.next(), socket.closed]),
    5000,
    'a ready frame or a close after the upgrade',
  );
  return 'type' in outcome ? `ready ${outcome['subject']}` : `closed ${outcome.code} ${outcome.reason}`;
}

/** An HS256 token whose HMAC key is `bytes` (what an attacker can read off a public key). */
const hmacWith = (bytes: Uint8Array, key: RsaKey) =>
  new SignJWT({ sub: 'mallory', exp: nowSeconds() + 600 })
    .setProtectedHeader({ alg: 'HS256', kid: key.kid })
    .sign(bytes);

describe('[auth] jwks_file', () => {
  test.each([
    ['whose keys name alg RS256', true],
    ['whose keys name no alg (every RSA algorithm allowed, never HS*)', false],
  ])(
    '%s accepts tokens signed by a listed key, refuses other keys and HS256 keyed with the public key',
    async (_, named) => {
      const [a, b, stranger] = await Promise.all([rsaKey('a'), rsaKey('b'), rsaKey('a')]);
      const published = named
        ? jwksOf(a, b)
        : JSON.stringify({ keys: [a, b].map(({ jwk: { alg, use, ...rest } }) => rest) });
      await using t = await startBridge('[auth]\njwks_file = "jwks.json"\n', { files: { 'jwks.json': published } });
      expect(await answerTo(t, await a.sign({ sub: 'by-a' }))).toBe('ready by-a');
      expect(await answerTo(t, await b.sign({ sub: 'by-b' }))).toBe('ready by-b');
      // Same kid, another private key: the signature cannot match.
      expect(await answerTo(t, await stranger.sign())).toBe('closed 4401 invalid token');
      const publicKey = await importJWK(a.jwk, 'RS256');
      const pem = new TextEncoder().encode(await exportSPKI(publicKey as CryptoKey));
      const jwkBytes = new TextEncoder().encode(JSON.stringify(a.jwk));
      const modulus = Buffer.from(String(a.jwk.n), 'base64url');
      for (const bytes of [pem, jwkBytes, modulus]) {
        expect(await answerTo(t, await hmacWith(bytes, a))).toBe('closed 4401 invalid token');
      }
    },
  );

  test('refuses PS256 signed by a listed RSA key whose JWK pins alg RS256', async () => {
    const a = await rsaKey('a');
    await using t = await startBridge('[auth]\njwks_file = "jwks.json"\n', { files: { 'jwks.json': jwksOf(a) } });
    const ps = await new SignJWT({ sub: 'x', exp: nowSeconds() + 600 })
      .setProtectedHeader({ alg: 'PS256', kid: 'a' })
      .sign(await importJWK(a.privateJwk, 'PS256'));
    expect(await answerTo(t, ps)).toBe('closed 4401 invalid token');
    expect(await answerTo(t, await a.sign({ sub: 'rs256' }))).toBe('ready rs256');
  });
});

describe('[auth] jwks_url', () => {
  afterEach(() => setSystemTime());

  // jose fetches the JWKS on first use and again on an unknown kid, but not within `cooldownDuration`
  // (30 s) of its last fetch, and the bridge keeps jose's defaults. Rather than wait 30 s, the test
  // moves Date (which jose's cooldown reads) 31 s ahead; the bridge's timers do not read Date.
  test('fetches keys on first use, picks up a rotated key once jose refetches, and refuses keys never served', async () => {
    const [a, b, never] = await Promise.all([rsaKey('key-a'), rsaKey('key-b'), rsaKey('key-never')]);
    using jwks = serveJwks(a);
    await using t = await startBridge(`[auth]\njwks_url = "${jwks.url}"\n`);
    expect(jwks.fetches).toBe(0);
    expect(await answerTo(t, await a.sign({ sub: 'by-a' }))).toBe('ready by-a');
    expect(jwks.fetches).toBe(1);
    expect(await answerTo(t, await a.sign({ sub: 'again' }))).toBe('ready again');
    expect(jwks.fetches).toBe(1);

    jwks.publish(a, b);
    // Within the cooldown an unknown kid is refused from the cache, without a fetch.
    expect(await answerTo(t, await b.sign({ sub: 'by-b' }))).toBe('closed 4401 invalid token');
    expect(jwks.fetches).toBe(1);
    setSystemTime(Date.now() + 31_000);
    expect(await answerTo(t, await b.sign({ sub: 'by-b' }))).toBe('ready by-b');
    expect(jwks.fetches).toBe(2);
    expect(await answerTo(t, await a.sign({ sub: 'a-still' }))).toBe('ready a-still');
    expect(await answerTo(t, await never.sign())).toBe('closed 4401 invalid token');
  });

  test('an unreachable JWKS URL refuses tokens with 4401 and keeps serving', async () => {
    const a = await rsaKey('key-a');
    const gone = serveJwks(a);
    const url = gone.url;
    gone[Symbol.dispose]();
    await using t = await startBridge(`[auth]\njwks_url = "${url}"\n[channels.news]\npublic = true\n`);
    expect(await answerTo(t, await a.sign())).toBe('closed 4401 invalid token');
    using socket = await openMux(t.url);
    await socket.next('ready');
    socket.send({ type: 'subscribe', channel: 'news' });
    expect(await socket.next()).toMatchObject({ type: 'subscribed', channel: 'news' });
  });
});
