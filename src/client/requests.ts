/**
 * The client's publishes: each gets an `id`, and its promise settles on the `published` or `error` frame
 * that carries it back. A publish made while the client is not open waits for the next socket; one sent on a
 * socket that then drops is rejected, never re-sent, because the server may have committed it already.
 */

import { PgwsError } from './api.ts';
import type { Connection } from './connection.ts';

/** A publish not answered yet: where it goes and the promise to settle. */
export interface Pending {
  readonly channel: string;
  readonly payload: unknown;
  readonly resolve: () => void;
  readonly reject: (error: PgwsError) => void;
}

/** The publishes of one client, from `publish()` to their answer. */
export interface Requests {
  publish(channel: string, payload: unknown): Promise<void>;
  /** Sends the publish now if the client is open, else keeps it for the next socket. */
  submit(pending: Pending): void;
  /** Sends the publish on the open socket, unless `hold` keeps it back for a while. */
  send(pending: Pending): void;
  /** Keeps publishes that were never sent for the next socket, after those already waiting. */
  requeue(pendings: readonly Pending[]): void;
  /** The client is open: sends what waited, in order. */
  flush(): void;
  /** Settles the publish with this id (`error` undefined: `published`); false when `id` is none of ours. */
  settle(id: unknown, error: PgwsError | undefined): boolean;
  /** The socket dropped: rejects every publish sent on it. */
  dropped(): void;
  /** The client closed: rejects every publish, waiting ones first. */
  abort(error: PgwsError): void;
}

/**
 * Creates the publishes' bookkeeping. `hold` is asked before each send and may keep the publish back (the
 * subscriptions do until their channel's subscribe is answered, then hand it to `send` again).
 */
export function createRequests(connection: Connection, hold: (pending: Pending) => boolean): Requests {
  const waiting: Pending[] = [];
  const inFlight = new Map<number, Pending>();
  let nextId = 1;

  function send(pending: Pending): void {
    if (hold(pending)) return;
    const id = nextId++;
    inFlight.set(id, pending);
    connection.send({ type: 'publish', id, channel: pending.channel, payload: pending.payload });
  }

  function submit(pending: Pending): void {
    if (connection.state === 'open') send(pending);
    else waiting.push(pending);
  }

  function rejectInFlight(error: () => PgwsError): void {
    for (const [id, pending] of inFlight) {
      inFlight.delete(id);
      pending.reject(error());
    }
  }

  return {
    publish(channel, payload) {
      if (connection.ended) return Promise.reject(new PgwsError('closed', 'the client is closed'));
      let settlers!: Pick<Pending, 'resolve' | 'reject'>;
      const done = new Promise<void>((resolve, reject) => {
        settlers = { resolve, reject };
      });
      // Outside the executor: a payload JSON.stringify refuses throws from publish(), not as a rejection.
      submit({ channel, payload, ...settlers });
      return done;
    },
    submit,
    send,
    requeue(pendings) {
      waiting.push(...pendings);
    },
    flush() {
      for (const pending of waiting.splice(0)) send(pending);
    },
    settle(id, error) {
      if (typeof id !== 'number') return false;
      const pending = inFlight.get(id);
      if (pending === undefined) return false;
      inFlight.delete(id);
      if (error === undefined) pending.resolve();
      else pending.reject(error);
      return true;
    },
    dropped() {
      rejectInFlight(
        () => new PgwsError('unavailable', 'the connection dropped before the publish was confirmed; not re-sent'),
      );
    },
    abort(error) {
      for (const pending of waiting.splice(0)) pending.reject(error);
      rejectInFlight(() => error);
    },
  };
}
