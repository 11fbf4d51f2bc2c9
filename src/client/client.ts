/**
 * The pg-notify-ws client for browsers and Bun: one multiplexed `pgws.v1` socket (or, with `transport`, a
 * `GET /events` stream and HTTP publishes speaking the same frames), many subscriptions, and reconnect,
 * resume and gaps behind three callbacks. After any drop it reconnects with capped, jittered
 * backoff and resubscribes every channel with `since` its last position: a recovered resume delivers the
 * missed messages through `onMessage` exactly once; anything else calls `onGap`, the one signal that state
 * must be reloaded.
 *
 * No dependencies: the platform's WebSocket and fetch (or ones passed in), timers and JSON. Served bundled at
 * `GET /client.js`; Bun and bundlers import this file directly (`pg-notify-ws/client`). This file only wires
 * the socket (connection.ts), the subscriptions (subscriptions.ts) and the publishes (requests.ts) together
 * and routes each frame to the one that owns it.
 */

import { type Client, type ClientOptions, PgwsError, type SubscribeOptions } from './api.ts';
import { createConnection } from './connection.ts';
import { createRequests } from './requests.ts';
import { createSubscriptions } from './subscriptions.ts';

export type {
  Client,
  ClientOptions,
  ClientTransport,
  ConnectionState,
  GapInfo,
  MessageMeta,
  SubscribedInfo,
  SubscribeOptions,
  Subscription,
  WebSocketConstructor,
} from './api.ts';
export { PgwsError } from './api.ts';

/** Creates a client and starts connecting. */
export function createClient<Channels extends Record<string, unknown> = Record<string, unknown>>(
  options: ClientOptions,
): Client<Channels> {
  // The three parts need each other; these callbacks run only after `start()`, when all three exist.
  const connection = createConnection(options, {
    opened() {
      subscriptions.resubscribe();
      requests.flush();
    },
    frame: receive,
    dropped() {
      requests.dropped();
      subscriptions.suspend();
    },
    ended(error) {
      // Held publishes join the waiting ones first, so the abort rejects every publish not yet answered.
      subscriptions.suspend();
      requests.abort(error);
    },
    initial: () => subscriptions.frames(),
  });
  const requests = createRequests(connection, (pending) => subscriptions.hold(pending));
  const subscriptions = createSubscriptions(connection, requests);

  function receive(frame: Record<string, unknown>): void {
    if (frame['type'] === 'published') requests.settle(frame['id'], undefined);
    else if (frame['type'] !== 'error') subscriptions.receive(frame);
    else {
      const error = errorOf(frame);
      if (!requests.settle(frame['id'], error) && !subscriptions.failed(frame, error)) connection.report(error);
    }
  }

  connection.start();

  return {
    get state() {
      return connection.state;
    },
    get transport() {
      return connection.transport;
    },
    subscribe(channel, subscribeOptions) {
      return subscriptions.add(channel, subscribeOptions as SubscribeOptions<unknown>);
    },
    publish(channel, payload) {
      return requests.publish(channel, payload);
    },
    close() {
      return connection.close();
    },
  };
}

/** The PgwsError an `error` frame describes. */
function errorOf(frame: Record<string, unknown>): PgwsError {
  const channel = typeof frame['channel'] === 'string' ? frame['channel'] : undefined;
  const issues = Array.isArray(frame['issues']) ? (frame['issues'] as PgwsError['issues']) : undefined;
  return new PgwsError(String(frame['code']), String(frame['message']), {
    ...(channel === undefined ? {} : { channel }),
    ...(issues === undefined ? {} : { issues }),
  });
}
