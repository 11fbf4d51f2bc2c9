/**
 * A multiplexed socket's subscriptions: subscribe (answered only once the LISTEN is in place), resume with a
 * replay of history (`replay.ts`), unsubscribe, narrowing after a token refresh, and release on close.
 *
 * Ordering invariant of a subscribe: once its LISTEN is in place, the `subscribed` answer, the replayed
 * history and the topic subscription happen in one synchronous step. Notifications are dispatched from
 * the database socket's own events, so none can fall between the replay and the live stream.
 */

import type { ErrorCode } from '../base/codes.ts';
import { ChannelLimitError } from '../base/errors.ts';
import type { Stats } from '../base/stats.ts';
import type { Tracer } from '../base/trace.ts';
import type { Catalog } from '../channels/catalog.ts';
import type { Listener } from '../db/listener.ts';
import type { Pager } from './archived.ts';
import { compileFilter } from './filter.ts';
import type { ClientFrame, SubscribeFrame } from './frames.ts';
import type { Hub, Membership, TopicFilter } from './hub.ts';
import { createReplays } from './replay.ts';
import { type ErrorReply, encodeError, encodeSubscribed, encodeUnsubscribed } from './replies.ts';
import type { Entry, Peer, Pending, SessionState } from './state.ts';

const membershipOf = (entry: Entry): Membership | undefined =>
  'pending' in entry ? undefined : 'replay' in entry ? entry.replay.membership : entry;

/** What subscriptions need from the rest of the bridge. */
export interface SubscriptionOptions {
  catalog: Pick<Catalog, 'allows' | 'hasSchema' | 'history' | 'durable'>;
  /** Pages of durable channels' tables, for replays their cache cannot serve. */
  pager?: Pager | undefined;
  hub: Hub;
  listener: Pick<Listener, 'acquire' | 'release' | 'has' | 'channelCount' | 'state'>;
  limits: {
    readonly maxSubscriptions: number;
    readonly maxChannels: number;
    /** A replay pauses for a drain once this many bytes wait to be written to the client. */
    readonly replayBudgetBytes: number;
  };
  stats: Stats;
  /** The permission check for reading a channel (`r`). */
  mayRead: (state: SessionState, channel: string) => boolean;
  /** Spans for replays when enabled. */
  tracer: Tracer;
}

/** The subscription side of every multiplexed socket. */
export interface Subscriptions {
  subscribe(peer: Peer, state: SessionState, frame: SubscribeFrame): Promise<void>;
  unsubscribe(peer: Peer, state: SessionState, frame: Extract<ClientFrame, { type: 'unsubscribe' }>): void;
  /** After a refresh: ends, with `reason: "forbidden"`, every subscription the token no longer allows. */
  narrow(peer: Peer, state: SessionState): void;
  /** The socket wrote out its backlog: paused replays go on. */
  drain(peer: Peer, state: SessionState): void;
  /** The socket closed: every subscription is released. */
  releaseAll(state: SessionState): void;
}

/** Creates the subscription engine. */
export function createSubscriptions(options: SubscriptionOptions): Subscriptions {
  const { catalog, hub, listener, limits, stats } = options;
  const { mayRead } = options;
  const fail = (peer: Peer, reply: ErrorReply): void => void peer.send(encodeError(reply));
  const replays = createReplays({
    hub,
    pager: options.pager,
    stats,
    replayBudgetBytes: limits.replayBudgetBytes,
    tracer: options.tracer,
    live,
  });

  function release(channel: string, membership: Membership): void {
    hub.leave(channel, membership);
    listener.release(channel);
  }

  async function subscribe(peer: Peer, state: SessionState, frame: SubscribeFrame): Promise<void> {
    const { id, channel } = frame;
    const refuse = (code: ErrorCode, message: string) => fail(peer, { id, channel, code, message });
    if (state.subscriptions.has(channel)) return refuse('already_subscribed', `already subscribed to "${channel}"`);
    if (state.subscriptions.size >= limits.maxSubscriptions) {
      return refuse('too_many_subscriptions', `at most ${limits.maxSubscriptions} subscriptions per socket`);
    }
    if (!catalog.allows(channel)) {
      return refuse('unknown_channel', `channel "${channel}" is not declared and unknown channels are rejected`);
    }
    if (!mayRead(state, channel)) {
      stats.authFailure('forbidden');
      return refuse('forbidden', `not allowed to read "${channel}"`);
    }
    if (frame.last !== undefined) {
      if (frame.since !== undefined) return refuse('bad_request', 'a subscribe takes since or last, not both');
      if (catalog.history(channel) === 0 && !catalog.durable(channel)) {
        return refuse(
          'bad_request',
          `"${channel}" keeps no messages to start from (it has no history and is not durable)`,
        );
      }
    }
    let filter: TopicFilter | undefined;
    if (frame.filter !== undefined) {
      if (!catalog.hasSchema(channel)) return refuse('bad_request', 'filters apply only to channels with a schema');
      const compiled = compileFilter(frame.filter);
      if (!compiled.ok) return refuse('bad_request', compiled.message);
      filter = { key: compiled.key, match: compiled.match };
    }
    if (listener.state !== 'up') return refuse('unavailable', 'database connection is down; retry shortly');
    if (!listener.has(channel) && listener.channelCount >= limits.maxChannels) {
      return refuse('unavailable', `channel limit reached (${limits.maxChannels} distinct channels); retry later`);
    }
    const pending: Pending = { pending: true, cancel: undefined };
    state.subscriptions.set(channel, pending);
    const settled = () => {
      state.subscriptions.delete(channel);
      if (pending.cancel !== undefined) peer.send(encodeUnsubscribed(channel, 'client', pending.cancel.id));
    };
    try {
      await listener.acquire(channel);
    } catch (error) {
      if (state.closed) return;
      if (error instanceof ChannelLimitError) refuse('unavailable', `${error.message}; retry later`);
      else refuse('unavailable', 'could not LISTEN on the channel; retry shortly');
      return settled();
    }
    if (state.closed) return listener.release(channel);
    // A refresh may have narrowed the token while the LISTEN was on its way.
    if (!mayRead(state, channel)) {
      listener.release(channel);
      stats.authFailure('forbidden');
      refuse('forbidden', `not allowed to read "${channel}"`);
      return settled();
    }
    const membership = hub.join(channel, filter);
    const { epoch, seq: head } = hub.position(channel);
    if (pending.cancel !== undefined) {
      peer.send(
        encodeSubscribed({ id, channel, epoch, seq: head, recovered: frame.since === undefined ? undefined : false }),
      );
      release(channel, membership);
      return settled();
    }
    if (frame.since === undefined && frame.last === undefined) {
      peer.send(encodeSubscribed({ id, channel, epoch, seq: head }));
      return live(peer, state, channel, membership);
    }
    replays.resume(peer, state, { id, channel, since: frame.since, last: frame.last }, membership);
  }

  function live(peer: Peer, state: SessionState, channel: string, membership: Membership): void {
    peer.subscribe(membership.topic);
    state.subscriptions.set(channel, membership);
  }

  function unsubscribe(peer: Peer, state: SessionState, frame: Extract<ClientFrame, { type: 'unsubscribe' }>): void {
    const { id, channel } = frame;
    const entry = state.subscriptions.get(channel);
    if (entry === undefined) {
      return void fail(peer, { id, channel, code: 'not_subscribed', message: `not subscribed to "${channel}"` });
    }
    if ('pending' in entry) {
      if (entry.cancel !== undefined) {
        return void fail(peer, { id, channel, code: 'not_subscribed', message: `not subscribed to "${channel}"` });
      }
      entry.cancel = { id };
      return;
    }
    state.subscriptions.delete(channel);
    const membership = membershipOf(entry);
    if (membership !== undefined) {
      if ('replay' in entry) replays.cancel(entry.replay);
      else peer.unsubscribe(membership.topic);
      release(channel, membership);
    }
    peer.send(encodeUnsubscribed(channel, 'client', id));
  }

  return {
    subscribe,
    unsubscribe,
    narrow(peer, state) {
      for (const [channel, entry] of [...state.subscriptions]) {
        // A pending subscribe checks the permission again once its LISTEN is in place.
        if ('pending' in entry || mayRead(state, channel)) continue;
        state.subscriptions.delete(channel);
        const membership = membershipOf(entry);
        if (membership !== undefined) {
          if ('replay' in entry) replays.cancel(entry.replay);
          else peer.unsubscribe(membership.topic);
          release(channel, membership);
        }
        peer.send(encodeUnsubscribed(channel, 'forbidden'));
      }
    },
    drain(peer, state) {
      for (const entry of state.subscriptions.values()) {
        if (!('replay' in entry)) continue;
        replays.next(peer, state, entry.replay);
        if (peer.buffered() > limits.replayBudgetBytes) return;
      }
    },
    releaseAll(state) {
      for (const [channel, entry] of state.subscriptions) {
        if ('replay' in entry) replays.cancel(entry.replay);
        const membership = membershipOf(entry);
        if (membership !== undefined) release(channel, membership);
      }
      state.subscriptions.clear();
    },
  };
}
