/**
 * What the client tests (client-sdk, client-streams) watch a client with: a recorder of one subscription's
 * callbacks that tests wait on, and the wait for a client to open.
 */
import type { Client, GapInfo, PgwsError, SubscribedInfo } from '../src/client/client.ts';
import { waitFor, within } from './wait.ts';

/** What one subscription saw, in order. */
export function recorder() {
  const events: string[] = [];
  const gaps: GapInfo[] = [];
  const errors: PgwsError[] = [];
  const subscribed: SubscribedInfo[] = [];
  let waiters: Array<() => void> = [];
  const wake = () => {
    // Swapped first: a waiter that is not satisfied yet puts itself back for the next event.
    const woken = waiters;
    waiters = [];
    for (const waiter of woken) waiter();
  };
  const push = (event: string) => {
    events.push(event);
    wake();
  };
  const reach = async (done: () => boolean, ms: number, what: () => string) => {
    const reached = new Promise<void>((resolve) => {
      const check = () => (done() ? resolve() : waiters.push(check));
      check();
    });
    await within(reached, ms, what());
  };
  return {
    events,
    gaps,
    errors,
    /** Every `onSubscribed` position, in order: the server's answers, kept apart from `events`. */
    subscribed,
    handlers: {
      onSubscribed: (position: SubscribedInfo) => {
        subscribed.push(position);
        wake();
      },
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
    until: (count: number, ms = 10_000) =>
      reach(
        () => events.length >= count,
        ms,
        () => `${count} events (have: ${events.join(', ')})`,
      ),
    /** Resolves once the server has answered `count` subscribes (resubscribes included). */
    answered: (count: number, ms = 10_000) =>
      reach(
        () => subscribed.length >= count,
        ms,
        () => `${count} subscribe answers (have ${subscribed.length})`,
      ),
  };
}

/** Resolves once the client is open. */
export const opened = (client: Client<Record<string, unknown>>) =>
  waitFor(() => client.state === 'open', 10_000, 'the client to open');
