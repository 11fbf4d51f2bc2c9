/**
 * The message of a `next` that timed out: what arrived on the channel instead, how much came before the call,
 * and every payload dropped there as invalid with the schema's issues. It is the one message that tells a
 * developer their trigger and their schema disagree, so it shows the payload as sent and each issue's path.
 */
import type { PayloadIssue } from '../channels/catalog.ts';

// Listed per kind; the error's `arrived` and `invalid` hold them all.
const LISTED = 10;
const SHOWN_CHARS = 300;

/** What one timed-out wait saw. */
export interface Seen {
  readonly name: string;
  readonly timeoutMs: number;
  /** Whether the wait had a `where`. */
  readonly filtered: boolean;
  /** Messages since the call that `where` turned down. */
  readonly skipped: readonly { readonly seq: number; readonly payload: unknown }[];
  readonly invalid: readonly { readonly payload: string; readonly issues: readonly PayloadIssue[] }[];
  /** How many of `invalid` came before the call. */
  readonly fromDropped: number;
  /** Messages on the channel before the call (not awaited by it). */
  readonly before: number;
}

/** The timeout's message, starting with `label` (`bridge.next("orders")`). */
export function timeoutMessage(label: string, seen: Seen): string {
  const channel = JSON.stringify(seen.name);
  const matching = seen.filtered ? 'message matching `where`' : 'message';
  const lines = [`${label}: no ${matching} within ${seen.timeoutMs} ms.`];
  if (seen.skipped.length === 0) lines.push(`Arrived on ${channel} since the call: nothing.`);
  else {
    lines.push(`Arrived on ${channel} since the call, not matching \`where\` (${seen.skipped.length}):`);
    for (const arrival of seen.skipped.slice(-LISTED)) lines.push(`  seq ${arrival.seq}: ${show(arrival.payload)}`);
    if (seen.skipped.length > LISTED) lines.push(`  (the ${seen.skipped.length - LISTED} before these are left out)`);
  }
  if (seen.before > 0) {
    const messages = seen.before === 1 ? '1 message' : `${seen.before} messages`;
    lines.push(`Before the call: ${messages} on ${channel} (next waits only for messages after it).`);
  }
  if (seen.invalid.length === 0) lines.push(`Dropped as invalid on ${channel}: nothing.`);
  else {
    lines.push(`Dropped as invalid on ${channel} (${seen.invalid.length}):`);
    const listed = seen.invalid.slice(-LISTED);
    for (const [i, dropped] of listed.entries()) {
      const early = seen.invalid.length - listed.length + i < seen.fromDropped ? ' (before the call)' : '';
      lines.push(`  ${clip(dropped.payload)}${early}`);
      for (const issue of dropped.issues)
        lines.push(`    ${issue.path === '' ? '(root)' : issue.path}: ${issue.message}`);
    }
    if (seen.invalid.length > LISTED) lines.push(`  (the ${seen.invalid.length - LISTED} before these are left out)`);
  }
  return lines.join('\n');
}

const show = (payload: unknown) => clip(JSON.stringify(payload) ?? String(payload));
const clip = (text: string) => (text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text);
