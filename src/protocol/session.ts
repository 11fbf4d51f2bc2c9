/**
 * One multiplexed socket's side of `pgws.v1`: what each client frame does to the socket's state
 * (subscriptions, rate bucket, identity) and which frames answer it. The socket itself is a {@link Peer}
 * (the server's WebSocket, seen only through four methods), so every rule here is independent of Bun.
 *
 * Ordering invariant of a subscribe: once its LISTEN is in place, the `subscribed` answer, the replayed
 * history and the topic subscription happen in one synchronous step. Notifications are dispatched from
 * the database socket's own events, so none can fall between the replay and the live stream.
 *
 * A replay larger than the socket's send budget is sent in parts, one per `drain`: meanwhile new messages
 * go into the channel's history, the replay reads on from there, and the socket joins the live topic in
 * the same step as the part that reaches the head. If the history moves past what the client has read,
 * the client is a slow consumer (1008); if the stream broke meanwhile, it gets the `gap`.
 */
import type { Access } from '../auth/access.ts';
import type { Identity } from '../auth/tokens.ts';
import type { Catalog } from '../channels/catalog.ts';
import type { Listener } from '../db/listener.ts';
import type { CloseLabel } from '../http/wire.ts';
import type { Logger } from '../observe/log.ts';
import type { Stats } from '../observe/stats.ts';
import { inexactNumberInField } from '../schema/json-numbers.ts';
import { compileFilter } from './filter.ts';
import {
  type AuthFrame,
  type ClientFrame,
  type PublishFrame,
  parseClientFrame,
  type SubscribeFrame,
} from './frames.ts';
import type { Hub, Membership, TopicFilter } from './hub.ts';
import { createBucket } from './rate.ts';
import {
  type ErrorCode,
  type ErrorReply,
  encodeError,
  encodeGap,
  encodeMessage,
  encodePong,
  encodePublished,
  encodeReady,
  encodeSubscribed,
  encodeUnsubscribed,
  type FrameId,
} from './replies.ts';

/** The socket as the protocol sees it. */
export interface Peer {
  send(text: string): unknown;
  /** Bytes queued for the client and not yet written. */
  buffered(): number;
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  close(cause: CloseLabel): void;
  /** Closes the socket with 4401 at `expires` (Unix seconds) plus the clock tolerance, unless called again. */
  expireAt(expires: number | undefined): void;
}

/** A resume whose replay did not fit the send budget at once: the next seq to send, after each drain. */
interface Replay {
  readonly channel: string;
  readonly channelJson: string;
  readonly membership: Membership;
  readonly epoch: string;
  next: number;
}

/**
 * A subscribe waiting for its LISTEN. An unsubscribe meanwhile is held in `cancel` and answered after the
 * subscribe is, so every frame gets its one answer, in order.
 */
interface Pending {
  readonly pending: true;
  cancel: { readonly id: FrameId | undefined } | undefined;
}

/** A subscription: waiting for its LISTEN, replaying history in parts, or live on its topic. */
type Entry = Membership | Pending | { readonly replay: Replay };

/** Per-socket state, kept in the socket's data. */
export interface SessionState {
  readonly subscriptions: Map<string, Entry>;
  readonly bucket: { take(): boolean };
  /** The socket's verified token; undefined while anonymous (public channels only, with `[auth]`). */
  identity: Identity | undefined;
  closed: boolean;
}

/** Publish outcomes, as counted in `pgws_publishes_total`. */
export type PublishOutcome = 'published' | 'invalid' | 'forbidden' | 'rate_limited' | 'too_large' | 'unavailable';

/** What a session needs from the rest of the bridge. */
export interface SessionOptions {
  catalog: Pick<Catalog, 'allows' | 'hasSchema' | 'publishable' | 'validate'>;
  hub: Hub;
  listener: Pick<Listener, 'acquire' | 'release' | 'has' | 'channelCount' | 'state' | 'publish'>;
  limits: {
    readonly maxSubscriptions: number;
    readonly maxChannels: number;
    readonly publishRate: number;
    /** A replay pauses for a drain once this many bytes wait to be written to the client. */
    readonly replayBudgetBytes: number;
  };
  stats: Stats;
  log: Logger;
  /** The one permission check every subscribe (`r`) and publish (`w`) passes. */
  access: Access;
}

/** The protocol engine for every multiplexed socket of one bridge. */
export interface Sessions {
  /**
   * A socket opened with the identity its upgrade established (undefined: anonymous): its initial
   * state; the `ready` frame is sent.
   */
  open(peer: Peer, identity: Identity | undefined): SessionState;
  /** A text frame arrived. Never throws: every problem is answered with an `error` frame. */
  message(peer: Peer, state: SessionState, text: string): void;
  /** The socket wrote out its backlog: paused replays go on. */
  drain(peer: Peer, state: SessionState): void;
  /** The socket closed: its subscriptions are released. */
  close(state: SessionState): void;
}

// PG: NOTIFY payloads must be shorter than 8000 bytes.
const MAX_NOTIFY_BYTES = 7999;

const membershipOf = (entry: Entry): Membership | undefined =>
  'pending' in entry ? undefined : 'replay' in entry ? entry.replay.membership : entry;

/** Creates the engine. */
export function createSessions(options: SessionOptions): Sessions {
  const { catalog, hub, listener, limits, stats } = options;
  const { access } = options;
  const permits = (state: SessionState, channel: string, mode: 'r' | 'w') =>
    access.permits(state.identity, channel, mode);

  const fail = (peer: Peer, reply: ErrorReply): void => void peer.send(encodeError(reply));
  // A bug must cost one frame its answer, never the process.
  const crashed = (error: unknown) => options.log.error('frame handler failed', { error });

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
    if (!permits(state, channel, 'r')) {
      stats.authFailure('forbidden');
      return refuse('forbidden', `not allowed to read "${channel}"`);
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
    } catch {
      if (state.closed) return;
      refuse('unavailable', 'could not LISTEN on the channel; retry shortly');
      return settled();
    }
    if (state.closed) return listener.release(channel);
    // A refresh may have narrowed the token while the LISTEN was on its way.
    if (!permits(state, channel, 'r')) {
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
    if (frame.since === undefined) {
      peer.send(encodeSubscribed({ id, channel, epoch, seq: head }));
      return live(peer, state, channel, membership);
    }
    const recovered = hub.resume(channel, frame.since).recovered;
    stats.replays[recovered ? 'recovered' : 'notRecovered'] += 1;
    peer.send(encodeSubscribed({ id, channel, epoch, seq: recovered ? frame.since.seq : head, recovered }));
    if (!recovered) return live(peer, state, channel, membership);
    const replay = { channel, channelJson: JSON.stringify(channel), membership, epoch, next: frame.since.seq + 1 };
    state.subscriptions.set(channel, { replay });
    replayOn(peer, state, replay);
  }

  function live(peer: Peer, state: SessionState, channel: string, membership: Membership): void {
    peer.subscribe(membership.topic);
    state.subscriptions.set(channel, membership);
  }

  /** Sends held messages from `replay.next` on until the head (then live) or the budget (then a drain). */
  function replayOn(peer: Peer, state: SessionState, replay: Replay): void {
    const { channel, membership } = replay;
    const resumed = hub.resume(channel, { epoch: replay.epoch, seq: replay.next - 1 });
    if (!resumed.recovered) {
      const now = hub.position(channel);
      if (now.epoch !== replay.epoch) {
        // The stream broke while this replay waited; its gap went to the topic, which we had not joined.
        peer.send(encodeGap(channel, now.epoch, now.seq));
        stats.gaps += 1;
        live(peer, state, channel, membership);
      } else {
        peer.close('slow_consumer');
      }
      return;
    }
    for (const entry of resumed.entries) {
      if (peer.buffered() > limits.replayBudgetBytes) {
        replay.next = entry.seq;
        return;
      }
      if (membership.filter === undefined || membership.filter.match(JSON.parse(entry.payloadJson))) {
        peer.send(encodeMessage(replay.channelJson, entry.seq, entry.payloadJson));
      }
    }
    live(peer, state, channel, membership);
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
      if (!('replay' in entry)) peer.unsubscribe(membership.topic);
      release(channel, membership);
    }
    peer.send(encodeUnsubscribed(channel, 'client', id));
  }

  async function publish(peer: Peer, state: SessionState, frame: PublishFrame, text: string): Promise<void> {
    const { id, channel } = frame;
    const refuse = (outcome: PublishOutcome, reply: Omit<ErrorReply, 'id' | 'channel'>) => {
      stats.publish(outcome);
      fail(peer, { id, channel, ...reply });
    };
    // Refused frames count too: the bucket bounds what a socket can make the bridge do.
    if (!state.bucket.take()) {
      return refuse('rate_limited', {
        code: 'rate_limited',
        message: `more than ${limits.publishRate} publishes a second`,
      });
    }
    if (!catalog.publishable(channel)) {
      return refuse('forbidden', { code: 'forbidden', message: `publishing on "${channel}" is not allowed` });
    }
    if (!permits(state, channel, 'w')) {
      stats.authFailure('forbidden');
      return refuse('forbidden', { code: 'forbidden', message: `not allowed to publish on "${channel}"` });
    }
    let payload: string;
    if (catalog.hasSchema(channel)) {
      const inexact = inexactNumberInField(text, 'payload', frame.payload);
      const validated = catalog.validate(channel, frame.payload);
      if (inexact !== undefined || !validated.ok) {
        const issues = validated.ok
          ? [{ path: '', message: `number ${inexact?.slice(0, 40)} cannot be held exactly; send it as a string` }]
          : validated.issues;
        return refuse('invalid', { code: 'invalid_payload', message: 'the payload fails the channel schema', issues });
      }
      payload = validated.json;
    } else if (typeof frame.payload === 'string') {
      payload = frame.payload;
    } else {
      const message = 'a channel without a schema takes a string payload';
      return refuse('invalid', { code: 'invalid_payload', message, issues: [{ path: '', message }] });
    }
    const bytes = Buffer.byteLength(payload);
    if (bytes > MAX_NOTIFY_BYTES) {
      const message = `the payload is ${bytes} bytes; PostgreSQL's NOTIFY takes at most ${MAX_NOTIFY_BYTES}`;
      return refuse('too_large', { code: 'payload_too_large', message });
    }
    if (listener.state !== 'up') {
      return refuse('unavailable', { code: 'unavailable', message: 'database connection is down; retry shortly' });
    }
    try {
      await listener.publish(channel, payload);
    } catch (error) {
      options.log.warn('publish failed', { channel, error });
      return refuse('unavailable', { code: 'unavailable', message: 'the database did not take the publish; retry' });
    }
    stats.publish('published');
    if (!state.closed) peer.send(encodePublished(channel, id));
  }

  /** An `auth` frame: present or refresh a token. Whatever does not verify closes the socket with 4401. */
  async function authenticate(peer: Peer, state: SessionState, frame: AuthFrame): Promise<void> {
    const verified = await access.verify(frame.token);
    if (state.closed) return;
    if (!verified.ok) {
      stats.authFailure(verified.reason);
      return peer.close(verified.reason === 'expired' ? 'token_expired' : 'token_invalid');
    }
    const { identity } = verified;
    if (state.identity !== undefined && state.identity.subject !== identity.subject) {
      stats.authFailure('invalid');
      return peer.close('token_subject');
    }
    state.identity = identity;
    peer.expireAt(identity.expires);
    peer.send(encodeReady(identity.subject, identity.expires));
    // A refreshed token that grants less takes away what it no longer grants, and says so.
    for (const [channel, entry] of [...state.subscriptions]) {
      // A pending subscribe checks the permission again once its LISTEN is in place.
      if ('pending' in entry || permits(state, channel, 'r')) continue;
      state.subscriptions.delete(channel);
      const membership = membershipOf(entry);
      if (membership !== undefined) {
        if (!('replay' in entry)) peer.unsubscribe(membership.topic);
        release(channel, membership);
      }
      peer.send(encodeUnsubscribed(channel, 'forbidden'));
    }
  }

  function handle(peer: Peer, state: SessionState, frame: ClientFrame, text: string): void {
    switch (frame.type) {
      case 'ping':
        peer.send(encodePong(frame.id));
        return;
      case 'auth':
        if (!access.enabled) {
          fail(peer, { id: frame.id, code: 'bad_request', message: 'authorization is not configured on this server' });
          return;
        }
        authenticate(peer, state, frame).catch(crashed);
        return;
      case 'subscribe':
        subscribe(peer, state, frame).catch(crashed);
        return;
      case 'unsubscribe':
        unsubscribe(peer, state, frame);
        return;
      case 'publish':
        publish(peer, state, frame, text).catch(crashed);
        return;
    }
  }

  return {
    open(peer, identity) {
      const state: SessionState = {
        subscriptions: new Map(),
        bucket: createBucket(limits.publishRate),
        identity,
        closed: false,
      };
      peer.expireAt(identity?.expires);
      peer.send(encodeReady(identity?.subject ?? null, identity?.expires ?? null));
      return state;
    },
    message(peer, state, text) {
      const parsed = parseClientFrame(text);
      if (!parsed.ok) {
        const { id, channel, code, message } = parsed;
        return void fail(peer, { id, channel, code, message });
      }
      handle(peer, state, parsed.frame, text);
    },
    drain(peer, state) {
      for (const entry of state.subscriptions.values()) {
        if (!('replay' in entry)) continue;
        replayOn(peer, state, entry.replay);
        if (peer.buffered() > limits.replayBudgetBytes) return;
      }
    },
    close(state) {
      state.closed = true;
      for (const [channel, entry] of state.subscriptions) {
        const membership = membershipOf(entry);
        if (membership !== undefined) release(channel, membership);
      }
      state.subscriptions.clear();
    },
  };
}
