/**
 * One multiplexed socket's side of `pgws.v1`: what each client frame does to the socket's state
 * (subscriptions, rate bucket, identity) and which frames answer it. The socket itself is a {@link Peer}
 * (the server's WebSocket, seen only through a few methods), so every rule here is independent of Bun.
 *
 * Subscriptions (with resume and replay) live in `subscriptions.ts`, publishing in `publisher.ts` (its pure
 * decision in `publish.ts`); this file dispatches frames, handles `auth`, and owns the per-socket state.
 */
import type { Access } from '../auth/access.ts';
import type { SubjectSlots } from '../auth/slots.ts';
import type { Identity } from '../auth/tokens.ts';
import type { Logger } from '../base/log.ts';
import type { Stats } from '../base/stats.ts';
import { NO_TRACER, type Tracer } from '../base/trace.ts';
import type { Transport } from '../base/wire.ts';
import type { Catalog } from '../channels/catalog.ts';
import type { ServerConfig } from '../config/sections.ts';
import type { Listener } from '../db/listener.ts';
import type { Queries } from '../db/queries.ts';
import type { Pager } from './archived.ts';
import { type AuthFrame, type ClientFrame, parseClientFrame } from './frames.ts';
import type { Hub } from './hub.ts';
import { createPublisher } from './publisher.ts';
import { type ErrorReply, encodeError, encodePong, encodeReady } from './replies.ts';
import type { Peer, SessionState } from './state.ts';
import { createSubscriptions } from './subscriptions.ts';

/** What a session needs from the rest of the bridge. */
export interface SessionOptions {
  catalog: Pick<Catalog, 'allows' | 'hasSchema' | 'publishable' | 'validate' | 'history' | 'durable'>;
  hub: Hub;
  /** Pages of durable channels' tables, for resumes their cache cannot serve. */
  pager?: Pager | undefined;
  listener: Pick<Listener, 'acquire' | 'release' | 'has' | 'channelCount' | 'state'> & {
    readonly queries: Pick<Queries, 'publish' | 'publishLarge' | 'send'>;
  };
  limits: {
    readonly maxSubscriptions: number;
    readonly maxChannels: number;
    readonly publishRate: number;
    /** A replay pauses for a drain once this many bytes wait to be written to the client. */
    readonly replayBudgetBytes: number;
    /** The largest payload a publish may carry (`[server] max_payload_bytes`); over NOTIFY's limit it goes through pgws.notify. */
    readonly maxPayloadBytes: number;
  };
  stats: Stats;
  log: Logger;
  /** The one permission check every subscribe (`r`) and publish (`w`) passes. */
  access: Access;
  /** `[auth] max_connections_per_subject`: an `auth` frame that makes an anonymous socket a subject's takes a slot. */
  slots: SubjectSlots;
  /** Spans for publishes and replays when enabled (default: off). */
  tracer?: Tracer;
}

/** A session's limits, from `[server]`. */
export const sessionLimits = (server: ServerConfig): SessionOptions['limits'] => ({
  maxSubscriptions: server.maxSubscriptions,
  maxChannels: server.maxChannels,
  publishRate: server.publishRate,
  // Half the slow-consumer bound: a replay never makes its own client look slow.
  replayBudgetBytes: server.slowConsumerBytes / 2,
  maxPayloadBytes: server.maxPayloadBytes,
});

/** The protocol engine for every multiplexed socket of one bridge. */
export interface Sessions {
  /**
   * A socket opened with the identity its upgrade established (undefined: anonymous), holding the
   * subject's slot the upgrade took: its initial state; the `ready` frame is sent. A `GET /events` stream is
   * a session too, and so is one HTTP publish (which holds no slot), over another transport (`ws` unless told).
   */
  open(peer: Peer, identity: Identity | undefined, transport?: Transport): SessionState;
  /** A text frame arrived. Never throws: every problem is answered with an `error` frame. */
  message(peer: Peer, state: SessionState, text: string): void;
  /** The socket wrote out its backlog: paused replays go on. */
  drain(peer: Peer, state: SessionState): void;
  /** The socket closed: its subscriptions and its subject's slot are released. */
  close(state: SessionState): void;
}

/** Creates the engine. */
export function createSessions(options: SessionOptions): Sessions {
  const { catalog, hub, listener, limits, stats } = options;
  const { access, slots } = options;
  const tracer = options.tracer ?? NO_TRACER;
  const permits = (state: SessionState, channel: string, mode: 'r' | 'w') =>
    access.permits(state.identity, channel, mode);

  const fail = (peer: Peer, reply: ErrorReply): void => void peer.send(encodeError(reply));
  const subscriptions = createSubscriptions({
    catalog,
    hub,
    pager: options.pager,
    listener,
    limits,
    stats,
    mayRead: (state, channel) => permits(state, channel, 'r'),
    tracer,
  });
  const publish = createPublisher({
    catalog,
    listener,
    limits,
    stats,
    log: options.log,
    mayWrite: (state, channel) => permits(state, channel, 'w'),
    tracer,
  });
  // A bug must cost one frame its answer, never the process.
  const crashed = (error: unknown) => options.log.error('frame handler failed', { error });

  /**
   * An `auth` frame: present or refresh a token. Whatever does not verify (a revoked token included)
   * closes the socket with 4401; a first token whose subject already holds its limit, with 4429. It waits
   * for the revocations to be current (after a database outage), however long that takes: meanwhile the
   * socket keeps the token it had.
   */
  async function authenticate(peer: Peer, state: SessionState, frame: AuthFrame): Promise<void> {
    const verified = await access.verify(frame.token, Number.POSITIVE_INFINITY);
    if (state.closed) return;
    if (!verified.ok) return peer.close(verified.reason === 'expired' ? 'token_expired' : 'token_invalid');
    const { identity } = verified;
    if (state.identity === undefined && !(await takeSlot(peer, state, identity.subject))) return;
    if (state.identity !== undefined && state.identity.subject !== identity.subject) {
      stats.authFailure('invalid');
      return peer.close('token_subject');
    }
    state.identity = identity;
    peer.identify(identity);
    peer.send(encodeReady(identity.subject, identity.expires));
    // A refreshed token that grants less takes away what it no longer grants, and says so.
    subscriptions.narrow(peer, state);
  }

  /** An anonymous socket becomes `subject`'s: takes its slot, or closes with 4429. False: go no further. */
  async function takeSlot(peer: Peer, state: SessionState, subject: string): Promise<boolean> {
    const taken = await slots.take(subject);
    // Closed meanwhile, or another `auth` frame got there first (and holds the slot): this one is not kept.
    if (taken && (state.closed || state.identity !== undefined)) slots.give(subject);
    if (state.closed) return false;
    if (!taken) peer.close('subject_limit');
    return taken;
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
        subscriptions.subscribe(peer, state, frame).catch(crashed);
        return;
      case 'unsubscribe':
        subscriptions.unsubscribe(peer, state, frame);
        return;
      case 'publish':
        publish(peer, state, frame, text).catch(crashed);
        return;
    }
  }

  return {
    open(peer, identity, transport = 'ws') {
      const state: SessionState = {
        transport,
        subscriptions: new Map(),
        bucket: undefined,
        identity,
        closed: false,
      };
      peer.identify(identity);
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
    drain: (peer, state) => subscriptions.drain(peer, state),
    close(state) {
      state.closed = true;
      subscriptions.releaseAll(state);
      // One HTTP publish is no connection: it took no slot.
      if (state.identity !== undefined && state.transport !== 'http') slots.give(state.identity.subject);
    },
  };
}
