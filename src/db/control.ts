/**
 * The bridge's control channel: what `pgws.disconnect`, `pgws.revoke` and `pgws.unrevoke` (`bun run sql`)
 * tell every instance, turned into {@link Cutoff}s. Runs where the LISTEN connection is (a lone process, or
 * the primary, which hands every cut-off on to its workers).
 *
 * A notification is only a hint naming what changed (a subject, a disconnect's id): the row is read on the
 * query connection, so a NOTIFY that anyone may send on the channel can neither lift a revocation nor invent
 * a disconnect, and a disconnect already applied is not applied twice.
 *
 * No window: after every (re)connect, once the channel is LISTENed, both tables are read again in one
 * snapshot; anything committed after it arrives as a hint, anything before is in it. Until that read comes
 * back the revocations are not current and no token is accepted. A disconnect made while the link was down
 * is found in that read and applied then. Reads are issued as hints arrive and applied in the same order
 * (one connection answers in order), so the last answer for a subject is its row as committed last.
 */
import type { Cutoff } from '../auth/revocations.ts';
import { backoffDelay } from '../base/backoff.ts';
import type { Logger } from '../base/log.ts';
import type { Loaded, Queries, Unread } from './queries.ts';
import { HINT } from './script.ts';

/** Options of {@link createControl}. */
export interface ControlOptions {
  queries: Pick<Queries, 'loadCutoffs' | 'readRevocation' | 'readDisconnect'>;
  /** Every cut-off, in the order the database committed them. */
  onCutoff(cutoff: Cutoff): void;
  /** Bounds of the backoff between reads that failed. */
  retryMinMs: number;
  retryMaxMs: number;
  log: Logger;
}

/** The control channel of one instance. */
export interface Control {
  /** A notification on the control channel. */
  receive(payload: string): void;
  /** The LISTEN connection is (back) up and LISTENs the channel: read everything again. */
  reload(): void;
  /** The LISTEN connection is lost: a read in progress no longer makes anything current. */
  lost(): void;
  stop(): void;
}

type Hint = { readonly revocation: string } | { readonly disconnect: number };

/** A hint's payload (`{"revocation": subject}` or `{"disconnect": id}`), or undefined for anything else. */
export function parseHint(payload: string): Hint | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { [HINT.revocation]: subject, [HINT.disconnect]: id } = value as Record<string, unknown>;
  if (typeof subject === 'string' && subject !== '') return { revocation: subject };
  if (typeof id === 'number' && Number.isSafeInteger(id)) return { disconnect: id };
  return undefined;
}

/** Creates the control channel's reader; nothing is read before `reload`. */
export function createControl(options: ControlOptions): Control {
  const { queries, onCutoff, log } = options;
  // Bumped by every reload and loss: a read answered for an older one makes nothing current.
  let generation = 0;
  let loadedOnce = false;
  let failures = 0;
  let reported: Unread['reason'] | undefined;
  let retry: Timer | undefined;
  // Disconnects applied (or found at the first read, when there was nothing to close yet).
  let applied = new Set<number>();
  let tail = Promise.resolve();

  /** Applies `read`'s answer after every answer issued before it. */
  const inOrder = <T>(read: Promise<T>, apply: (value: T) => void) => {
    tail = tail
      .then(() => read)
      .then(apply)
      .catch((error: unknown) => log.error('applying a cut-off failed', { error }));
  };

  function reload(): void {
    clearTimeout(retry);
    retry = undefined;
    const at = ++generation;
    inOrder(queries.loadCutoffs(), (loaded) => at === generation && loadedFor(loaded));
  }

  function loadedFor(loaded: Loaded): void {
    if (!loaded.ok && loaded.reason !== 'missing') {
      failed(loaded);
      return;
    }
    // Not installed: no revocation or disconnect can exist, and a hint arriving later reads the new rows.
    const { revocations, disconnects } = loaded.ok ? loaded.value : { revocations: [], disconnects: [] };
    if (reported !== undefined) log.info('revocations read again', { revocations: revocations.length });
    failures = 0;
    reported = undefined;
    // Missed while the link was down. At the first read no connection is open yet: nothing to close.
    for (const row of disconnects) {
      if (loadedOnce && !applied.has(row.id))
        onCutoff({ kind: 'disconnect', subject: row.subject, reason: row.reason });
    }
    applied = new Set(disconnects.map((row) => row.id));
    loadedOnce = true;
    onCutoff({ kind: 'revocations', rows: revocations });
  }

  function failed(unread: Unread): void {
    if (reported !== unread.reason) {
      reported = unread.reason;
      if (unread.reason === 'forbidden') {
        log.error(
          "the bridge's role may not read pgws.revocations and pgws.disconnects, so it accepts no token: GRANT SELECT ON pgws.revocations, pgws.disconnects TO the bridge's role",
          { error: unread.error },
        );
      } else log.warn('reading revocations failed; no token is accepted until it succeeds', { error: unread.error });
    }
    const delay = backoffDelay(failures++, options.retryMinMs, options.retryMaxMs, Math.random);
    retry = setTimeout(reload, delay);
  }

  /** A hint's row could not be read: what it changed is unknown, so everything is read again. */
  const unknown = (unread: Unread) => {
    log.warn('reading a cut-off failed; reading every revocation again', { error: unread.error });
    reload();
  };

  return {
    receive(payload) {
      const hint = parseHint(payload);
      // Anyone may NOTIFY on the channel: junk is not worth more than a debug line.
      if (hint === undefined) return log.debug('ignored a notification on the control channel that is no hint');
      if ('revocation' in hint) {
        const subject = hint.revocation;
        return inOrder(queries.readRevocation(subject), (read) => {
          if (read.ok || read.reason === 'missing') {
            return onCutoff({ kind: 'revocation', subject, before: read.ok ? read.value : undefined });
          }
          unknown(read);
        });
      }
      const id = hint.disconnect;
      if (applied.has(id)) return;
      inOrder(queries.readDisconnect(id), (read) => {
        if (!read.ok) return read.reason === 'missing' ? undefined : unknown(read);
        // None: forged, or older than pgws.disconnects keeps.
        if (read.value === undefined || applied.has(id)) return;
        applied.add(id);
        onCutoff({ kind: 'disconnect', subject: read.value.subject, reason: read.value.reason });
      });
    },
    reload,
    lost() {
      generation += 1;
      clearTimeout(retry);
      retry = undefined;
    },
    stop() {
      generation += 1;
      clearTimeout(retry);
    },
  };
}
