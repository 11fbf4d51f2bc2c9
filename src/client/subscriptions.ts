/**
 * The client's subscriptions: one per channel, each remembering its position (`epoch`, `seq`) so that after
 * any reconnect it subscribes again with `since` that position. A recovered resume delivers the missed
 * messages through `onMessage` exactly once; anything else calls `onGap`, the one signal that state must be
 * reloaded. A subscribe the database cannot serve yet is retried with the reconnect backoff.
 */

import { type MessageMeta, PgwsError, type SubscribeOptions, type Subscription } from './api.ts';
import type { Connection } from './connection.ts';
import type { Pending, Requests } from './requests.ts';

interface Sub {
  readonly channel: string;
  /** Answered `subscribed` on the current socket; publishes to the channel wait for it (see `hold`). */
  live: boolean;
  /** Publishes made while the subscribe was unanswered, sent once it is. */
  readonly held: Pending[];
  readonly options: SubscribeOptions<unknown>;
  position: MessageMeta | undefined;
  retry: ReturnType<typeof setTimeout> | undefined;
  retries: number;
}

/** The subscriptions of one client and the frames that concern them. */
export interface Subscriptions {
  add(channel: string, options: SubscribeOptions<unknown>): Subscription;
  /** The client is open: subscribes every channel again, from its position. */
  resubscribe(): void;
  /** Handles `subscribed`, `message`, `gap` and `unsubscribed`; ignores other frames. */
  receive(frame: Record<string, unknown>): void;
  /** Handles an `error` frame's error if it names a subscribed channel; false when it names none. */
  failed(frame: Record<string, unknown>, error: PgwsError): boolean;
  /** The subscribe frame of every subscription, from its position: what a new stream starts with. */
  frames(): Record<string, unknown>[];
  /** Keeps a publish back while its channel's subscribe is unanswered; false when it may go now. */
  hold(pending: Pending): boolean;
  /** The socket dropped or the client closed: stops retries, and unsent held publishes wait for the next socket. */
  suspend(): void;
}

/** Creates the subscriptions, sending through `connection` and releasing held publishes to `requests`. */
export function createSubscriptions(connection: Connection, requests: Requests): Subscriptions {
  const subs = new Map<string, Sub>();

  const report = (error: PgwsError, sub: Sub) => (sub.options.onError ?? connection.report)(error);
  const subOf = (frame: Record<string, unknown>) =>
    subs.get(typeof frame['channel'] === 'string' ? frame['channel'] : '');
  const release = (sub: Sub) => {
    for (const pending of sub.held.splice(0)) requests.send(pending);
  };

  const frameOf = (sub: Sub) => ({
    type: 'subscribe',
    channel: sub.channel,
    ...(sub.position === undefined ? {} : { since: sub.position }),
    ...(sub.options.filter === undefined ? {} : { filter: sub.options.filter }),
  });

  function subscribeFrame(sub: Sub): void {
    sub.live = false;
    connection.send(frameOf(sub));
  }

  function receive(frame: Record<string, unknown>): void {
    const sub = subOf(frame);
    if (sub === undefined) return;
    const { channel } = sub;
    switch (frame['type']) {
      case 'subscribed': {
        sub.retries = 0;
        const epoch = String(frame['epoch']);
        const seq = Number(frame['seq']);
        sub.position = { epoch, seq };
        sub.live = true;
        const recovered = typeof frame['recovered'] === 'boolean' ? frame['recovered'] : undefined;
        if (recovered === false) sub.options.onGap?.({ channel, epoch, seq, reason: 'not_recovered' });
        sub.options.onSubscribed?.({ epoch, seq, ...(recovered === undefined ? {} : { recovered }) });
        release(sub);
        return;
      }
      case 'message': {
        if (sub.position === undefined) return;
        // A plain NOTIFY on a durable channel takes no seq: delivered, and the position stays where it is.
        if (frame['seq'] === undefined) {
          sub.options.onMessage(frame['payload'], sub.position);
          return;
        }
        const seq = Number(frame['seq']);
        // A message at or before the position was already delivered (a resume never repeats, but be sure).
        if (sub.position === undefined || seq <= sub.position.seq) return;
        sub.position = { epoch: sub.position.epoch, seq };
        sub.options.onMessage(frame['payload'], sub.position);
        return;
      }
      case 'gap': {
        const epoch = String(frame['epoch']);
        const seq = Number(frame['seq']);
        sub.position = { epoch, seq };
        sub.options.onGap?.({ channel, epoch, seq, reason: 'gap' });
        return;
      }
      case 'unsubscribed':
        if (frame['reason'] === 'forbidden') {
          subs.delete(channel);
          report(new PgwsError('forbidden', `the token no longer allows "${channel}"`, { channel }), sub);
        }
        return;
    }
  }

  function failed(frame: Record<string, unknown>, error: PgwsError): boolean {
    const sub = subOf(frame);
    if (sub === undefined) return false;
    if (error.code === 'unavailable') {
      // The database is away: try this subscription again with the reconnect backoff, keeping `since`.
      sub.retry = setTimeout(
        () => subs.get(sub.channel) === sub && subscribeFrame(sub),
        connection.backoff(sub.retries++),
      );
      return true;
    }
    if (error.code === 'already_subscribed') return true;
    subs.delete(sub.channel);
    release(sub);
    report(error, sub);
    return true;
  }

  return {
    add(channel, options) {
      if (connection.ended) throw new PgwsError('closed', 'the client is closed');
      if (subs.has(channel)) throw new PgwsError('already_subscribed', `already subscribed to "${channel}"`);
      const sub: Sub = { channel, options, position: undefined, retry: undefined, retries: 0, live: false, held: [] };
      subs.set(channel, sub);
      if (connection.state === 'open') subscribeFrame(sub);
      return {
        unsubscribe() {
          if (subs.get(channel) !== sub) return;
          subs.delete(channel);
          clearTimeout(sub.retry);
          if (connection.state === 'open') connection.send({ type: 'unsubscribe', channel });
          for (const pending of sub.held.splice(0)) requests.submit(pending);
        },
      };
    },
    resubscribe() {
      for (const sub of subs.values()) subscribeFrame(sub);
    },
    receive,
    failed,
    frames: () => [...subs.values()].map(frameOf),
    hold(pending) {
      const sub = subs.get(pending.channel);
      if (sub === undefined || sub.live) return false;
      sub.held.push(pending);
      return true;
    },
    suspend() {
      for (const sub of subs.values()) {
        clearTimeout(sub.retry);
        sub.live = false;
        // Never sent: they go out again once the next socket is open and the channel subscribed.
        requests.requeue(sub.held.splice(0));
      }
    },
  };
}
