/**
 * The one permission check: every plain upgrade, multiplexed subscribe and publish asks here. Without
 * `[auth]` everything is allowed (the bridge as it was). With it, a channel is readable by a token that
 * grants `r` on it, or by anyone when it is `public`; writable only by a token that grants `w` (and only if
 * the channel has `publish = true`, which the catalog checks). Authorization happens at subscribe time and
 * on refresh, never per notification.
 */
import type { Clock } from '../base/clock.ts';
import type { AuthConfig } from '../config/sections.ts';
import type { Mode } from './grants.ts';
import { createVerifier, type Identity, type KeySource, type Verified, type Verifier } from './tokens.ts';

/** Authorization for one bridge. */
export interface Access {
  /** Whether `[auth]` is configured. */
  readonly enabled: boolean;
  verify(token: string): Promise<Verified>;
  /** Whether `identity` (undefined: anonymous) may read or write `channel`. */
  permits(identity: Identity | undefined, channel: string, mode: Mode): boolean;
}

/** Options of {@link createAccess}. */
export interface AccessOptions {
  readonly auth: AuthConfig | undefined;
  readonly verifier: Verifier | undefined;
  readonly isPublic: (channel: string) => boolean;
}

/** Creates the access check. */
export function createAccess(options: AccessOptions): Access {
  const { auth, verifier } = options;
  if (auth === undefined || verifier === undefined) {
    return {
      enabled: false,
      verify: async () => ({ ok: false, reason: 'invalid', message: 'authorization is not configured' }),
      permits: () => true,
    };
  }
  return {
    enabled: true,
    verify: (token) => verifier.verify(token),
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
