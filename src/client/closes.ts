/**
 * What the client does after the server closes its socket, by close code (the README's close-code table
 * says what each means): what it tells `onError`, and how it comes back. Pure, so every rule is tested
 * without a socket or a timer.
 */

import { backoffDelay } from '../base/backoff.ts';
import { PgwsError } from './api.ts';

/**
 * How the client comes back: `retry` with the usual backoff; `later`, never sooner than half of the
 * backoff's maximum (4429: the subject has too many connections, and hammering does not free one);
 * `new_token`, only with a token other than the one the server cut off (4403: do not reconnect with it).
 */
export type Comeback = 'retry' | 'later' | 'new_token';

/** What a close means to the client. */
export interface AfterClose {
  /** For `onError`, when the application should hear of it. */
  readonly error: PgwsError | undefined;
  readonly comeback: Comeback;
}

/** What the client does after a close with `code` and the server's `reason` text. */
export function afterClose(code: number, reason: string): AfterClose {
  switch (code) {
    case 4401:
      return { error: new PgwsError('unauthorized', `the server refused the token: ${reason}`), comeback: 'retry' };
    case 4403:
      return { error: new PgwsError('cut_off', `the server cut this subject off: ${reason}`), comeback: 'new_token' };
    case 4429:
      return {
        error: new PgwsError('subject_limit', `too many connections for this subject: ${reason}`),
        comeback: 'later',
      };
    default:
      return { error: undefined, comeback: 'retry' };
  }
}

/** The wait before the next connect: capped, jittered backoff after `failures`, at least `maxMs / 2` when `later`. */
export function reconnectDelay(
  comeback: Comeback,
  failures: number,
  minMs: number,
  maxMs: number,
  random: () => number,
): number {
  const delay = backoffDelay(failures, minMs, maxMs, random);
  return comeback === 'later' ? Math.max(delay, Math.round(maxMs / 2 + (random() * maxMs) / 2)) : delay;
}
