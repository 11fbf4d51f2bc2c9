/**
 * Token verification with jose (the well-kept JWT library; no hand-written JWT code): algorithms pinned
 * to the key type, `exp` required (jose checks it only when present, hence `requiredClaims`), 5 seconds
 * of clock tolerance, `audience`/`issuer` when configured. A JWKS URL is fetched and cached by jose's
 * remote key set, which also refetches on an unknown `kid` (key rotation).
 *
 * Failures are data, never exceptions, and their messages never contain the token.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { type Clock, systemClock } from '../base/clock.ts';
import { compileGrants, GRANT_VALUES, type Grants, NO_GRANTS } from './grants.ts';

/** Where keys come from, resolved at startup by `keys.ts`. */
export type KeySource =
  | { readonly kind: 'secret'; readonly secret: Uint8Array<ArrayBuffer> }
  | { readonly kind: 'jwks'; readonly jwks: JSONWebKeySet }
  | { readonly kind: 'remote'; readonly url: URL };

/** Who a verified token speaks for, until when, and what it allows. */
export interface Identity {
  readonly subject: string;
  /** `exp`, in Unix seconds. */
  readonly expires: number;
  /** `iat`, in Unix seconds, when the token has one: what a revocation's `before` is compared with. */
  readonly issuedAt: number | undefined;
  readonly grants: Grants;
}

/** A verification outcome. */
export type Verified =
  | { readonly ok: true; readonly identity: Identity }
  | { readonly ok: false; readonly reason: 'invalid' | 'expired'; readonly message: string };

/** Checks tokens against one key source. */
export interface Verifier {
  verify(token: string): Promise<Verified>;
}

/** Options of {@link createVerifier}. */
export interface VerifierOptions {
  readonly keys: KeySource;
  readonly audience?: string | readonly string[] | undefined;
  readonly issuer?: string | undefined;
  /** What `exp` and `nbf` are checked against (the real clock by default). */
  readonly clock?: Clock | undefined;
}

/** docs/PROTOCOL.md: 5 seconds of clock tolerance on `exp` (and `nbf`). */
export const CLOCK_TOLERANCE_SECONDS = 5;

// Far above any real token (a few hundred bytes to a few KB), far below max_message_bytes.
const MAX_TOKEN_LENGTH = 16 * 1024;
// Never HS* for public keys (an HMAC keyed with a public key is the classic confusion), never `none`.
const ASYMMETRIC = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];

/** The algorithms a JWKS's keys allow: each key's `alg` when it names one, else every one of its type. */
export function algorithmsOf(jwks: JSONWebKeySet): string[] {
  const found = new Set<string>();
  for (const key of jwks.keys) {
    if (typeof key.alg === 'string') found.add(key.alg);
    else if (key.kty === 'RSA') for (const alg of ASYMMETRIC.filter((a) => /^[RP]S/.test(a))) found.add(alg);
    else if (key.kty === 'EC') found.add({ 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }[key.crv ?? ''] ?? '');
    else if (key.kty === 'OKP') for (const alg of ['EdDSA', 'Ed25519']) found.add(alg);
  }
  found.delete('');
  return [...found].filter((alg) => !alg.startsWith('HS') && alg !== 'none');
}

/** Creates a verifier; a remote key set is fetched on first use, not here. */
export function createVerifier(options: VerifierOptions): Verifier {
  const { keys, clock = systemClock } = options;
  const common = {
    requiredClaims: ['exp', 'sub'],
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    ...(options.audience === undefined ? {} : { audience: options.audience as string | string[] }),
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
  };
  const check =
    keys.kind === 'secret'
      ? withSecret(keys.secret)
      : keys.kind === 'jwks'
        ? withKeySet(createLocalJWKSet(keys.jwks), algorithmsOf(keys.jwks))
        : withKeySet(createRemoteJWKSet(keys.url), ASYMMETRIC);
  // Imported once as a CryptoKey: handing jose the raw bytes re-imports the key on every verify (twice the CPU).
  function withSecret(secret: Uint8Array<ArrayBuffer>) {
    const key = crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    return async (token: string) =>
      jwtVerify(token, await key, { ...common, algorithms: ['HS256'], currentDate: new Date(clock.now()) });
  }
  function withKeySet(keySet: JWTVerifyGetKey, algorithms: string[]) {
    return (token: string) => jwtVerify(token, keySet, { ...common, algorithms, currentDate: new Date(clock.now()) });
  }

  return {
    async verify(token) {
      if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        return { ok: false, reason: 'invalid', message: 'the token is empty or too long' };
      }
      let payload: JWTPayload;
      try {
        payload = (await check(token)).payload;
      } catch (error) {
        return refusal(error);
      }
      return identityOf(payload);
    },
  };
}

function identityOf(payload: JWTPayload): Verified {
  const { sub, exp, iat } = payload;
  if (typeof sub !== 'string' || sub === '' || typeof exp !== 'number') {
    return { ok: false, reason: 'invalid', message: 'the token needs a string "sub" and a numeric "exp"' };
  }
  // jose has already refused an `iat` that is present and not a number.
  const issuedAt = typeof iat === 'number' ? iat : undefined;
  const claim = payload['channels'];
  if (claim === undefined) return { ok: true, identity: { subject: sub, expires: exp, issuedAt, grants: NO_GRANTS } };
  if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) {
    return { ok: false, reason: 'invalid', message: 'the "channels" claim must be an object' };
  }
  const entries = Object.entries(claim);
  const bad = entries.find(([, mode]) => !(GRANT_VALUES as readonly unknown[]).includes(mode));
  if (bad !== undefined) {
    return { ok: false, reason: 'invalid', message: 'every "channels" value must be "r", "w" or "rw"' };
  }
  const grants = compileGrants(Object.fromEntries(entries) as Record<string, (typeof GRANT_VALUES)[number]>);
  return { ok: true, identity: { subject: sub, expires: exp, issuedAt, grants } };
}

/** Turns a jose error into a short reason; jose's messages name claims and algorithms, never the token. */
function refusal(error: unknown): Verified {
  if (error instanceof errors.JWTExpired) return { ok: false, reason: 'expired', message: 'the token has expired' };
  if (error instanceof errors.JWTClaimValidationFailed) {
    return { ok: false, reason: 'invalid', message: `claim "${error.claim}": ${error.reason}` };
  }
  if (error instanceof errors.JOSEError) {
    return { ok: false, reason: 'invalid', message: `the token was refused (${error.code})` };
  }
  // Not jose's: a malformed token can make the decoder throw a plain TypeError or SyntaxError.
  return { ok: false, reason: 'invalid', message: 'the token is malformed' };
}
