/**
 * The revocations in force (`pgws.revoke`: a subject's tokens issued before a moment are refused), whether
 * they are current, and the cut-offs that change them. Every process keeps its own copy: the primary's
 * control channel (`db/control.ts`) reads them from the database and hands every change to its workers.
 *
 * Current means: read in full since the LISTEN connection was last (re)established, so no revocation
 * committed since can have been missed. Until then no token may be accepted (`access.ts` waits).
 */
import type { RevocationRefusal } from '../base/reasons.ts';
import { within } from '../base/timeout.ts';
import type { Identity } from './tokens.ts';

/**
 * What the operator's SQL did, as the bridge applies it: a subject's connections to close
 * (`pgws.disconnect`), one subject's revocation set (`before`, ms since the epoch) or lifted (undefined),
 * or every revocation, read in full after a (re)connect.
 */
export type Cutoff =
  | { readonly kind: 'disconnect'; readonly subject: string; readonly reason: string | undefined }
  | { readonly kind: 'revocation'; readonly subject: string; readonly before: number | undefined }
  | { readonly kind: 'revocations'; readonly rows: readonly (readonly [subject: string, before: number])[] };

/** The revocations one process holds. */
export interface Revocations {
  /** Revocations held. */
  readonly size: number;
  /** Whether they were read in full since the LISTEN connection was last established. */
  readonly current: boolean;
  /** Resolves true once they are current (at once if they are), false after `ms` (Infinity: never). */
  whenCurrent(ms: number): Promise<boolean>;
  /** Why a revocation refuses this identity's token, or undefined when none does. */
  refuses(identity: Pick<Identity, 'subject' | 'issuedAt'>): RevocationRefusal | undefined;
  /** Applies a cut-off: `revocations` replaces them all and makes them current; `disconnect` changes none. */
  apply(cutoff: Cutoff): void;
  /** The LISTEN connection is lost: revocations committed from now on may be missed until the next full read. */
  stale(): void;
  /** Every revocation held, for a worker that starts after they were read. */
  rows(): [subject: string, before: number][];
}

/**
 * Creates the revocations of one process, not current until the first full read. Without `[auth]`
 * (`enabled` false) nothing is ever revoked and they are always current: there are no tokens to check.
 */
export function createRevocations(enabled: boolean): Revocations {
  const before = new Map<string, number>();
  let current = !enabled;
  let waiters = Promise.withResolvers<true>();

  return {
    get size() {
      return before.size;
    },
    get current() {
      return current;
    },
    whenCurrent(ms) {
      if (current) return Promise.resolve(true);
      return within(waiters.promise, ms, () => false);
    },
    refuses({ subject, issuedAt }) {
      const cut = before.get(subject);
      if (cut === undefined) return undefined;
      if (issuedAt === undefined) return 'no_iat';
      // `iat` counts whole seconds: a token minted in the second of `before` is refused too, never let through.
      return issuedAt * 1000 < cut ? 'issued_before' : undefined;
    },
    apply(cutoff) {
      if (cutoff.kind === 'revocation') {
        if (cutoff.before === undefined) before.delete(cutoff.subject);
        else before.set(cutoff.subject, cutoff.before);
      } else if (cutoff.kind === 'revocations') {
        before.clear();
        for (const [subject, at] of cutoff.rows) before.set(subject, at);
        if (!enabled || current) return;
        current = true;
        waiters.resolve(true);
      }
    },
    stale() {
      if (!enabled || !current) return;
      current = false;
      waiters = Promise.withResolvers<true>();
    },
    rows: () => [...before],
  };
}
