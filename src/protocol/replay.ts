/**
 * A resume (a subscribe with `since`) or a `last`, once its LISTEN is in place and its topic membership made.
 * Either the missed messages are still kept (`recovered: true`: they are sent, then the socket goes live) or
 * nothing is replayed (`recovered: false`, never a partial replay).
 *
 * A replay larger than the socket's send budget is sent in parts, one per `drain`: meanwhile new messages
 * go into the channel's history, the replay reads on from there, and the socket joins the live topic in
 * the same step as the part that reaches the head. If the history moves past what the client has read,
 * the client is a slow consumer (1008); if the stream broke meanwhile, it gets the `gap`.
 *
 * A durable channel keeps only its newest messages in memory; what lies further back is read from the
 * table in pages (`archived.ts`), never past the head the live stream has reached, until the memory takes
 * over. Rows are consecutive, so the first row of a page tells whether everything asked for is retained.
 *
 * With tracing on, each resume is a `pgws.replay` span, open across drains until the subscription is live.
 */
import type { Stats } from '../base/stats.ts';
import { SpanKey, type Tracer } from '../base/trace.ts';
import type { Pager } from './archived.ts';
import type { Position } from './frames.ts';
import type { Hub, Membership } from './hub.ts';
import { encodeGap, encodeMessage, encodeSubscribed, type FrameId } from './replies.ts';
import type { Peer, Replay, SessionState } from './state.ts';

/** What resumes need from the subscriptions around them. */
export interface ReplayOptions {
  hub: Pick<Hub, 'resume' | 'position' | 'kept'>;
  /** Pages of durable channels' tables; without it a durable channel replays from memory only. */
  pager?: Pager | undefined;
  stats: Stats;
  /** A replay pauses for a drain once this many bytes wait to be written to the client. */
  replayBudgetBytes: number;
  tracer: Tracer;
  /** Joins the subscription's live topic: the replay is done. */
  live(peer: Peer, state: SessionState, channel: string, membership: Membership): void;
}

/** A subscribe to answer: `since` (a resume) or `last` (the newest messages). */
export interface Asked {
  readonly id: FrameId | undefined;
  readonly channel: string;
  readonly since?: Position | undefined;
  readonly last?: number | undefined;
}

/** The resume side of every multiplexed socket. */
export interface Replays {
  /**
   * Answers a subscribe with `since` or `last` (`subscribed`), then replays or goes live: at once from memory,
   * or after a first page of a durable channel's table.
   */
  resume(peer: Peer, state: SessionState, asked: Asked, membership: Membership): void;
  /** Sends kept messages from `replay.next` on until the head (then live) or the budget (then a drain). */
  next(peer: Peer, state: SessionState, replay: Replay): void;
  /** The subscription ended while its replay waited for a drain. */
  cancel(replay: Replay): void;
}

const AHEAD_WAIT_MS = 5000;
const AHEAD_POLL_MS = 10;

/** Creates the resume engine. */
export function createReplays(options: ReplayOptions): Replays {
  const { hub, stats, tracer, live, pager } = options;
  const end = (replay: Replay, failure?: string) => {
    const { span } = replay;
    if (span === undefined) return;
    span.set({ 'pgws.replayed': replay.sent });
    if (failure !== undefined) span.fail(failure);
    span.end();
  };
  const current = (state: SessionState, replay: Replay) => {
    const entry = state.subscriptions.get(replay.channel);
    return !state.closed && entry !== undefined && 'replay' in entry && entry.replay === replay;
  };
  /** Reads the table after `after`, up to the live head; undefined when the subscription went meanwhile. */
  const read = async (state: SessionState, replay: Replay, after: number) => {
    replay.reading = true;
    const page = await pager?.page(replay.channel, after, hub.position(replay.channel).seq);
    replay.reading = false;
    return current(state, replay) ? { page } : undefined;
  };
  const send = (peer: Peer, replay: Replay, seq: number, payloadJson: string) => {
    const { filter } = replay.membership;
    if (filter !== undefined && !filter.match(JSON.parse(payloadJson))) return;
    peer.send(encodeMessage(replay.channelJson, seq, payloadJson));
    replay.sent += 1;
  };

  async function fetch(peer: Peer, state: SessionState, replay: Replay): Promise<void> {
    const got = await read(state, replay, replay.next - 1);
    if (got === undefined) return;
    if (got.page === undefined) {
      end(replay, 'read failed');
      return peer.close('database_lost', 'replay from the database failed; resume again');
    }
    // Rows deleted ahead of the client while it read: retention passed it, like a history that moved on.
    if (got.page.first !== replay.next) {
      end(replay, 'slow_consumer');
      return peer.close('slow_consumer');
    }
    replay.page = got.page.entries;
    replay.next = (got.page.last ?? replay.next - 1) + 1;
    next(peer, state, replay);
  }

  function next(peer: Peer, state: SessionState, replay: Replay): void {
    if (replay.reading) return;
    const { channel, membership } = replay;
    let sentFromPage = 0;
    for (const entry of replay.page) {
      if (peer.buffered() > options.replayBudgetBytes) break;
      send(peer, replay, entry.seq, entry.payloadJson);
      sentFromPage += 1;
    }
    if (sentFromPage > 0) replay.page = replay.page.slice(sentFromPage);
    if (replay.page.length > 0) return;
    const resumed = hub.resume(channel, { epoch: replay.epoch, seq: replay.next - 1 });
    if (!resumed.recovered) {
      const now = hub.position(channel);
      if (now.epoch !== replay.epoch) {
        // The stream broke while this replay waited; its gap went to the topic, which we had not joined.
        peer.send(encodeGap(channel, now.epoch, now.seq));
        stats.gaps += 1;
        end(replay, 'gap');
        live(peer, state, channel, membership);
      } else if (pager?.durable(channel) === true && replay.next <= now.seq) {
        void fetch(peer, state, replay);
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
      send(peer, replay, entry.seq, entry.payloadJson);
    }
    end(replay);
    live(peer, state, channel, membership);
  }

  /** A `last` the memory cannot serve: it starts just before the newest `last` rows the table still keeps. */
  async function latest(peer: Peer, state: SessionState, replay: Replay, asked: Asked, head: number): Promise<void> {
    const got = await read(state, replay, head - (asked.last ?? 0));
    if (got === undefined) return;
    let start = head - hub.kept(replay.channel);
    if (got.page !== undefined) {
      stats.durable.tableReplays += 1;
      replay.page = got.page.entries;
      start = (got.page.first ?? head + 1) - 1;
    }
    replay.next = (got.page?.last ?? start) + 1;
    peer.send(encodeSubscribed({ id: asked.id, channel: replay.channel, epoch: replay.epoch, seq: start }));
    next(peer, state, replay);
  }

  /** A resume the memory cannot serve, on a durable channel: recovered iff the table keeps every row after it. */
  async function retained(peer: Peer, state: SessionState, replay: Replay, asked: Asked, since: Position) {
    const { channel } = replay;
    const got = await read(state, replay, since.seq);
    if (got === undefined) return;
    const recovered = got.page !== undefined && got.page.first === since.seq + 1;
    const head = hub.position(channel).seq;
    answer(peer, replay, asked, recovered ? since.seq : head, recovered);
    if (!recovered || got.page === undefined) return live(peer, state, channel, replay.membership);
    stats.durable.tableReplays += 1;
    replay.page = got.page.entries;
    replay.next = (got.page.last ?? since.seq) + 1;
    next(peer, state, replay);
  }

  /** A resume with `since`; `mayWait` when a durable channel's reader may still be on its way to `since`. */
  function fromSince(peer: Peer, state: SessionState, replay: Replay, asked: Asked, since: Position, mayWait: boolean) {
    const { epoch, seq: head } = hub.position(replay.channel);
    if (hub.resume(replay.channel, since).recovered) {
      answer(peer, replay, asked, since.seq, true);
      replay.next = since.seq + 1;
      return next(peer, state, replay);
    }
    const durable = pager?.durable(replay.channel) === true && since.epoch === epoch;
    if (durable && since.seq <= head) return void retained(peer, state, replay, asked, since);
    if (durable && mayWait) return void ahead(peer, state, replay, asked, since);
    answer(peer, replay, asked, head, false);
    live(peer, state, replay.channel, replay.membership);
  }

  /**
   * A durable channel's resume past this instance's head: rows another instance delivered, committed but not yet
   * read here. Waits for the reader (polled: the hub has no event for it); after AHEAD_WAIT_MS, not recovered.
   */
  async function ahead(peer: Peer, state: SessionState, replay: Replay, asked: Asked, since: Position) {
    replay.reading = true;
    for (let waited = 0; waited < AHEAD_WAIT_MS && current(state, replay); waited += AHEAD_POLL_MS) {
      const now = hub.position(replay.channel);
      if (now.epoch !== since.epoch || now.seq >= since.seq) break;
      await new Promise((resolve) => setTimeout(resolve, AHEAD_POLL_MS));
    }
    replay.reading = false;
    if (!current(state, replay)) return;
    replay.epoch = hub.position(replay.channel).epoch;
    fromSince(peer, state, replay, asked, since, false);
  }

  const answer = (peer: Peer, replay: Replay, asked: Asked, seq: number, recovered: boolean) => {
    stats.replays[recovered ? 'recovered' : 'notRecovered'] += 1;
    replay.span?.set({ 'pgws.recovered': recovered });
    if (!recovered) end(replay);
    peer.send(encodeSubscribed({ id: asked.id, channel: replay.channel, epoch: replay.epoch, seq, recovered }));
  };

  return {
    // Synchronous whenever the memory serves it: the answer, the replay and joining the live topic happen in
    // one step, so no notification can fall between them. Only table reads wait, and catch up from memory.
    resume(peer, state, asked, membership) {
      const { channel, since, last } = asked;
      const { epoch, seq: head } = hub.position(channel);
      const span = tracer.enabled
        ? tracer.start('pgws.replay', { [SpanKey.channel]: channel, ...(since ? { 'pgws.since': since.seq } : {}) })
        : undefined;
      const replay: Replay = {
        channel,
        channelJson: JSON.stringify(channel),
        membership,
        epoch,
        next: head + 1,
        page: [],
        reading: false,
        sent: 0,
        span,
      };
      state.subscriptions.set(channel, { replay });
      const kept = hub.kept(channel);
      const durable = pager?.durable(channel) === true;
      if (since === undefined) {
        const wanted = last ?? 0;
        if (durable && kept < wanted && kept < head) return void latest(peer, state, replay, asked, head);
        replay.next = head - Math.min(wanted, kept) + 1;
        peer.send(encodeSubscribed({ id: asked.id, channel, epoch, seq: replay.next - 1 }));
        return next(peer, state, replay);
      }
      fromSince(peer, state, replay, asked, since, true);
    },
    next,
    cancel: (replay) => end(replay, 'cancelled'),
  };
}
