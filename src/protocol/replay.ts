/**
 * A resume: a subscribe with `since`, once its LISTEN is in place and its topic membership made. Either the
 * missed messages are still held (`recovered: true`: they are sent, then the socket goes live) or nothing is
 * replayed (`recovered: false`, never a partial replay).
 *
 * A replay larger than the socket's send budget is sent in parts, one per `drain`: meanwhile new messages
 * go into the channel's history, the replay reads on from there, and the socket joins the live topic in
 * the same step as the part that reaches the head. If the history moves past what the client has read,
 * the client is a slow consumer (1008); if the stream broke meanwhile, it gets the `gap`.
 *
 * With tracing on, each resume is a `pgws.replay` span, open across drains until the subscription is live.
 */
import type { Stats } from '../base/stats.ts';
import { SpanKey, type Tracer } from '../base/trace.ts';
import type { Position } from './frames.ts';
import type { Hub, Membership } from './hub.ts';
import { encodeGap, encodeMessage, encodeSubscribed, type FrameId } from './replies.ts';
import type { Peer, Replay, SessionState } from './state.ts';

/** What resumes need from the subscriptions around them. */
export interface ReplayOptions {
  hub: Pick<Hub, 'resume' | 'position'>;
  stats: Stats;
  /** A replay pauses for a drain once this many bytes wait to be written to the client. */
  replayBudgetBytes: number;
  tracer: Tracer;
  /** Joins the subscription's live topic: the replay is done. */
  live(peer: Peer, state: SessionState, channel: string, membership: Membership): void;
}

/** The resume side of every multiplexed socket. */
export interface Replays {
  /** Answers a subscribe with `since` (`subscribed`), then replays or goes live at once. */
  resume(
    peer: Peer,
    state: SessionState,
    answer: { readonly id: FrameId | undefined; readonly channel: string; readonly since: Position },
    membership: Membership,
  ): void;
  /** Sends held messages from `replay.next` on until the head (then live) or the budget (then a drain). */
  next(peer: Peer, state: SessionState, replay: Replay): void;
  /** The subscription ended while its replay waited for a drain. */
  cancel(replay: Replay): void;
}

/** Creates the resume engine. */
export function createReplays(options: ReplayOptions): Replays {
  const { hub, stats, tracer, live } = options;
  const end = (replay: Replay, failure?: string) => {
    const { span } = replay;
    if (span === undefined) return;
    span.set({ 'pgws.replayed': replay.sent });
    if (failure !== undefined) span.fail(failure);
    span.end();
  };

  function next(peer: Peer, state: SessionState, replay: Replay): void {
    const { channel, membership } = replay;
    const resumed = hub.resume(channel, { epoch: replay.epoch, seq: replay.next - 1 });
    if (!resumed.recovered) {
      const now = hub.position(channel);
      if (now.epoch !== replay.epoch) {
        // The stream broke while this replay waited; its gap went to the topic, which we had not joined.
        peer.send(encodeGap(channel, now.epoch, now.seq));
        stats.gaps += 1;
        end(replay, 'gap');
        live(peer, state, channel, membership);
      } else {
        end(replay, 'slow_consumer');
        peer.close('slow_consumer');
      }
      return;
    }
    for (const entry of resumed.entries) {
      if (peer.buffered() > options.replayBudgetBytes) {
        replay.next = entry.seq;
        return;
      }
      if (membership.filter === undefined || membership.filter.match(JSON.parse(entry.payloadJson))) {
        peer.send(encodeMessage(replay.channelJson, entry.seq, entry.payloadJson));
        replay.sent += 1;
      }
    }
    end(replay);
    live(peer, state, channel, membership);
  }

  return {
    resume(peer, state, { id, channel, since }, membership) {
      const { epoch, seq: head } = hub.position(channel);
      const recovered = hub.resume(channel, since).recovered;
      stats.replays[recovered ? 'recovered' : 'notRecovered'] += 1;
      const span = tracer.enabled
        ? tracer.start('pgws.replay', {
            [SpanKey.channel]: channel,
            'pgws.since': since.seq,
            'pgws.recovered': recovered,
          })
        : undefined;
      peer.send(encodeSubscribed({ id, channel, epoch, seq: recovered ? since.seq : head, recovered }));
      if (!recovered) {
        span?.end();
        return live(peer, state, channel, membership);
      }
      const replay: Replay = {
        channel,
        channelJson: JSON.stringify(channel),
        membership,
        epoch,
        next: since.seq + 1,
        sent: 0,
        span,
      };
      state.subscriptions.set(channel, { replay });
      next(peer, state, replay);
    },
    next,
    cancel: (replay) => end(replay, 'cancelled'),
  };
}
