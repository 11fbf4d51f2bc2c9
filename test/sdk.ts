/**
 * What the client tests (client-sdk, client-streams) watch a client with: a recorder of one subscription's
 * callbacks that tests wait on, and the wait for a client to open.
 */
import type { Client, GapInfo, PgwsError } from '../src/client/client.ts';
import { waitFor, within } from './wait.ts';

/** What one subscription saw, in order. */
export function recorder() {
  const events: string[] = [];
  const gaps: GapInfo[] = [];
  const errors: PgwsError[] = [];
  let waiters: Array<() => void> = [];
  const push = (event: string) => {
    events.push(event);
    // Swapped first: a waiter that is not satisfied yet puts itself back for the next event.
    const woken = waiters;
    waiters = [];
    for (const wake of woken) wake();
  };
  return {
    events,
    gaps,
    errors,
    handlers: {
      onMessage: (payload: unknown, meta: { seq: number }) => push(`${meta.seq}:${JSON.stringify(payload)}`),
      onGap: (info: GapInfo) => {
        gaps.push(info);
        push(`gap:${info.reason}`);
      },
      onError: (error: PgwsError) => {
        errors.push(error);
        push(`error:${error.code}`);
      },
    },
    /** Resolves once `count` events have been seen. */
    async until(count: number, ms = 10_000) {
      const reached = new Promise<void>((resolve) => {
        const check = () => (events.length >= count ? resolve() : waiters.push(check));
        check();
      });
      await within(reached, ms, `${count} events (have: ${events.join(', ')})`);
    },
  };
}

/** Resolves once the client is open. */
export const opened = (client: Client<Record<string, unknown>>) =>
  waitFor(() => client.state === 'open', 10_000, 'the client to open');
