/**
 * Tokens for the authorization tests, made with jose as an identity provider would: HS256 with the
 * test secret, RS256 key pairs published as a JWKS (a file or a local `Bun.serve`), and the hand-built
 * ones no library will sign (`alg: none`). Every secret here is test-only.
 */
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

/** The variable `[auth] secret_env` names in these tests, and its value (≥ 32 bytes, as HS256 needs). */
export const SECRET_ENV = 'PGWS_TEST_JWT_SECRET';
export const SECRET = 'test-only-secret-4f9a2c81e7d3b6a05c1e9f4d2b8a7c3e';
/** `startBridge` options that resolve the secret as main.ts would. */
export const secretEnv = { env: { [SECRET_ENV]: SECRET } };
/** The `[auth]` section for the HS256 secret above; `extra` lines are appended inside it. */
export const authToml = (extra = '') => `[auth]\nsecret_env = "${SECRET_ENV}"\n${extra}\n`;

/** Unix seconds now (what `exp` and `nbf` count in). */
export const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * What a test token says: any claims, of any type (the refusal tests need wrong ones). `sub` defaults
 * to alice and `exp` (absolute Unix seconds) to an hour from now; a claim set to `undefined` is left out.
 */
export type Claims = Readonly<Record<string, unknown>>;

const payloadOf = (claims: Claims): JWTPayload => {
  const payload: Record<string, unknown> = { sub: 'alice', exp: nowSeconds() + 3600, ...claims };
  for (const [key, value] of Object.entries(payload)) if (value === undefined) delete payload[key];
  return payload;
};

/** An HMAC-signed token (`alg` HS256 unless said) with `secret` (default: the test secret). */
export function hmac(claims: Claims = {}, secret: string | Uint8Array = SECRET, alg = 'HS256'): Promise<string> {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  return new SignJWT(payloadOf(claims)).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);
}

/** An HS256 token signed with `secret` (default: the test secret). */
export const hs256 = (claims: Claims = {}, secret: string | Uint8Array = SECRET) => hmac(claims, secret);

/**
 * A token of `sub` that may read every channel, issued (`iat`, Unix seconds) now unless said, or without
 * `iat` (`none`): what the cut-off tests revoke. `claims` adds to it.
 */
export const subjectToken = (sub: string, iat: number | 'none' = nowSeconds(), claims: Claims = {}) =>
  hs256({ sub, iat: iat === 'none' ? undefined : iat, channels: { '*': 'r' }, ...claims });

/** A token with `alg: none` and no signature: the classic bypass, which jose never signs. */
export function unsecured(claims: Claims = {}): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(payloadOf(claims))}.`;
}

/** An RS256 key pair: the private key signs, `jwk` is the public half as published in a JWKS. */
export interface RsaKey {
  readonly kid: string;
  readonly jwk: JWK;
  /** The private half, for signing with another RSA algorithm than the published one. */
  readonly privateJwk: JWK;
  sign(claims?: Claims): Promise<string>;
}

/** Makes an RS256 key pair with `kid`; its published JWK names `alg` and `use`, as providers do. */
export async function rsaKey(kid: string): Promise<RsaKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return {
    kid,
    jwk,
    privateJwk: await exportJWK(privateKey),
    sign: (claims = {}) =>
      new SignJWT(payloadOf(claims)).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(privateKey),
  };
}

/** A JWKS document holding the public halves of `keys`. */
export const jwksOf = (...keys: RsaKey[]) => JSON.stringify({ keys: keys.map((key) => key.jwk) });

/** A JWKS endpoint on 127.0.0.1 whose keys a test can change; counts the fetches jose makes. */
export interface JwksServer extends Disposable {
  readonly url: string;
  readonly fetches: number;
  publish(...keys: RsaKey[]): void;
}

/** Serves `keys` as a JWKS at `http://127.0.0.1:PORT/.well-known/jwks.json`. */
export function serveJwks(...keys: RsaKey[]): JwksServer {
  let document = jwksOf(...keys);
  let fetches = 0;
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch() {
      fetches += 1;
      return new Response(document, { headers: { 'content-type': 'application/jwk-set+json' } });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/.well-known/jwks.json`,
    get fetches() {
      return fetches;
    },
    publish(...next) {
      document = jwksOf(...next);
    },
    [Symbol.dispose]() {
      server.stop(true);
    },
  };
}
