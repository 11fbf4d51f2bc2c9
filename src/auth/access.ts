/**
 * The one token check and the one permission check: every plain upgrade, multiplexed upgrade, `auth` frame,
 * subscribe and publish asks here (and so must every other way in: an event stream, an HTTP publish). Without
 * `[auth]` everything is allowed (the bridge as it was). With it, a token must verify (jose) and must not be
 * covered by a revocation (`pgws.revoke`), which are consulted only once they are current; a channel is
 * readable by a token that grants `r` on it, or by anyone when it is `public`; writable only by a token that
 * grants `w` (and only if the channel has `publish = true`, which the catalog checks). Authorization happens
 * at subscribe time and on refresh, never per notification.
 */
import type { Clock } from '../base/clock.ts';
import type { Logger } from '../base/log.ts';
import type { Stats } from '../base/stats.ts';
import type { AuthConfig } from '../config/sections.ts';
import type { Mode } from './grants.ts';
import type { Revocations } from './revocations.ts';
import { createVerifier, type Identity, type KeySource, type Verified, type Verifier } from './tokens.ts';

/**
 * What a token check says: verified, or refused. Beyond jose's refusals, `revoked` (a revocation covers
 * it: refuse it as an invalid token, 401 or 4401) and `unavailable` (the revocations are not current, as
 * after a database outage, and did not become so in time: a 503, retry shortly).
 */
export type Checked =
  | Verified
  | { readonly ok: false; readonly reason: 'revoked' | 'unavailable'; readonly message: string };

/** Authorization for one bridge. */
export interface Access {
  /** Whether `[auth]` is configured. */
  readonly enabled: boolean;
  /**
   * Checks a token, waiting up to `waitMs` for the revocations to be current (Infinity: until they are).
   * Every refusal is counted here (`pgws_auth_failures_total`, `pgws_revocation_refusals_total`), and one
   * by a revocation is logged with its subject, never the token.
   */
  verify(token: string, waitMs: number): Promise<Checked>;
  /** Whether `identity` (undefined: anonymous) may read or write `channel`. */
  permits(identity: Identity | undefined, channel: string, mode: Mode): boolean;
}

/** Options of {@link createAccess}. */
export interface AccessOptions {
  readonly auth: AuthConfig | undefined;
  /** `[auth]`'s verifier ({@link verifierFor}); none without `[auth]`. */
  readonly verifier: Verifier | undefined;
  readonly isPublic: (channel: string) => boolean;
  readonly revocations: Pick<Revocations, 'whenCurrent' | 'refuses'>;
  readonly stats: Pick<Stats, 'authFailure' | 'revocationRefusal'>;
  readonly log: Logger;
}

/** Creates the access check. */
export function createAccess(options: AccessOptions): Access {
  const { auth, verifier, revocations, stats, log } = options;
  if (auth === undefined || verifier === undefined) {
    return {
      enabled: false,
      verify: async () => ({ ok: false, reason: 'invalid', message: 'authorization is not configured' }),
      permits: () => true,
    };
  }
  return {
    enabled: true,
    async verify(token, waitMs) {
      const verified = await verifier.verify(token);
      if (!verified.ok) {
        stats.authFailure(verified.reason);
        return verified;
      }
      // No window: a revocation committed while the database link was down is read before any token passes.
      if (!(await revocations.whenCurrent(waitMs))) {
        return {
          ok: false,
          reason: 'unavailable',
          message: 'revocations are being read from the database; retry shortly',
        };
      }
      const { subject } = verified.identity;
      const refusal = revocations.refuses(verified.identity);
      if (refusal === undefined) return verified;
      stats.authFailure('revoked');
      stats.revocationRefusal(refusal);
      log.info('revoked token refused', { subject, reason: refusal });
      return { ok: false, reason: 'revoked', message: 'the token was revoked' };
    },
    permits(identity, channel, mode) {
      if (mode === 'r' && options.isPublic(channel)) return true;
      return identity?.grants.permits(channel, mode) ?? false;
    },
  };
}

/**
 * The verifier of `[auth]` with its resolved keys, or none without `[auth]`. A config with `[auth]` whose keys
 * were not resolved is a bug in the caller (main.ts resolves them before it starts anything).
 */
export function verifierFor(
  auth: AuthConfig | undefined,
  keys: KeySource | undefined,
  clock?: Clock | undefined,
): Verifier | undefined {
  if (auth === undefined) return undefined;
  if (keys === undefined) throw new Error('[auth] is set but no keys were resolved');
  return createVerifier({ keys, audience: auth.audience, issuer: auth.issuer, clock });
}
