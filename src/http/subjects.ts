/**
 * Who is connected as which subject in this process, so that a cut-off reaches its connections without a
 * scan of all of them: `pgws.disconnect` closes every holder of the subject; a revocation closes the holders
 * whose token it now covers; a full read of the revocations checks every subject held.
 *
 * Sockets register here today. Anything else a token opens for a while (an event stream) registers the same
 * way: `hold` it with its identity once its token was checked, `release` it when it ends, and give it a
 * `close(cause, text)` that ends it. A holder that registers with a token a revocation already covers is
 * closed at once: a revoke that lands between its token check and its registration still reaches it.
 */
import type { Cutoff, Revocations } from '../auth/revocations.ts';
import type { Identity } from '../auth/tokens.ts';
import type { Logger } from '../base/log.ts';
import type { CutoffReason } from '../base/reasons.ts';
import type { Stats } from '../base/stats.ts';
import type { CloseLabel } from '../base/wire.ts';

/** A connection that speaks for a subject, as a cut-off closes it. */
export interface Holder {
  /** Ends the connection: `disconnected` and `revoked` are 4403 on a socket; `text` replaces the cause's. */
  close(cause: Extract<CloseLabel, 'disconnected' | 'revoked'>, text?: string): void;
}

/** The holders of one process, by subject. */
export interface Subjects<H extends Holder> {
  /** `holder` speaks for `identity` from now on (undefined: for nobody, as `release`). */
  hold(holder: H, identity: Identity | undefined): void;
  release(holder: H): void;
  /** Closes what a cut-off reaches (the revocations must already reflect it). */
  apply(cutoff: Cutoff): void;
}

/** Options of {@link createSubjects}. */
export interface SubjectsOptions {
  revocations: Pick<Revocations, 'refuses'>;
  stats: Pick<Stats, 'cutoff'>;
  log: Logger;
}

/** Creates an empty index. */
export function createSubjects<H extends Holder>(options: SubjectsOptions): Subjects<H> {
  const { revocations, stats, log } = options;
  const identities = new Map<H, Identity>();
  const bySubject = new Map<string, Set<H>>();

  const release = (holder: H) => {
    const identity = identities.get(holder);
    if (identity === undefined) return;
    identities.delete(holder);
    const holders = bySubject.get(identity.subject);
    holders?.delete(holder);
    if (holders?.size === 0) bySubject.delete(identity.subject);
  };

  const cut = (subject: string, holders: readonly H[], reason: CutoffReason, text?: string) => {
    for (const holder of holders) {
      release(holder);
      stats.cutoff(reason);
      holder.close(reason === 'disconnect' ? 'disconnected' : 'revoked', text);
    }
    // The subject, never the token (nor its claims).
    if (holders.length > 0) log.info('cut off', { subject, reason, connections: holders.length });
  };

  /** Closes `subject`'s holders whose token the revocations now refuse. */
  const enforce = (subject: string) => {
    const holders = [...(bySubject.get(subject) ?? [])];
    const refused = holders.filter((holder) => {
      const identity = identities.get(holder);
      return identity !== undefined && revocations.refuses(identity) !== undefined;
    });
    cut(subject, refused, 'revoke');
  };

  return {
    hold(holder, identity) {
      release(holder);
      if (identity === undefined) return;
      identities.set(holder, identity);
      let holders = bySubject.get(identity.subject);
      if (holders === undefined) {
        holders = new Set();
        bySubject.set(identity.subject, holders);
      }
      holders.add(holder);
      if (revocations.refuses(identity) !== undefined) cut(identity.subject, [holder], 'revoke');
    },
    release,
    apply(cutoff) {
      if (cutoff.kind === 'disconnect') {
        const holders = [...(bySubject.get(cutoff.subject) ?? [])];
        return cut(cutoff.subject, holders, 'disconnect', cutoff.reason);
      }
      if (cutoff.kind === 'revocation') return enforce(cutoff.subject);
      for (const subject of [...bySubject.keys()]) enforce(subject);
    },
  };
}
