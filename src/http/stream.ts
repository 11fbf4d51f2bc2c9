/**
 * One `GET /events` stream: a {@link Peer} of the protocol engine, like a multiplexed socket, whose frames are
 * re-framed by its writer (`framing.ts`) and queued for the response body. What the engine does with a socket
 * (subscribe, replay in parts, join topics, expire, close a slow consumer) it does with this unchanged.
 *
 * The body is a pull-based `ReadableStream`: Bun pulls when the client's socket has taken what it had, so the
 * text queued here is exactly what the client has not read yet, `buffered()` is that, and a client that stops
 * reading is ended once it passes `slow_consumer_bytes`, as a slow socket is. A pull that finds nothing queued is
 * the stream's `drain`: a paused replay goes on. Writes are batched: whatever the frames of one turn of the event
 * loop add is handed to Bun as one chunk.
 */
import type { Identity } from '../auth/tokens.ts';
import type { ClockTimer } from '../base/clock.ts';
import type { CloseLabel, CloseMetricLabel } from '../base/wire.ts';
import type { Peer, SessionState } from '../protocol/state.ts';
import type { StreamWriter } from './framing.ts';
import type { Holder } from './subjects.ts';
import type { PushMember } from './topics.ts';

/** What a stream needs from the streams of its server. */
export interface StreamHost {
  readonly slowConsumerBytes: number;
  join(member: PushMember, topic: string): void;
  leave(member: PushMember, topic: string): void;
  /** The stream speaks for `identity` from now on: its expiry, and its place among the subject's holders. */
  identify(stream: Stream, identity: Identity | undefined): void;
  /** The stream has text to hand over at the end of this turn. */
  schedule(stream: Stream): void;
  /** The client read everything: paused replays go on. */
  drained(stream: Stream): void;
  /** The stream ended (`label` says why); everything it held is to be released. */
  ended(stream: Stream, label: CloseMetricLabel): void;
}

/** The answers to a stream's subscribes, awaited before its response starts. */
interface Opening {
  remaining: number;
  /** The first `error` frame by subscribe id (the channel's place in the query). */
  readonly errors: Map<number, Record<string, unknown>>;
  readonly done: () => void;
}

const encoder = new TextEncoder();
const SUBSCRIBED = '{"type":"subscribed"';
const ERROR = '{"type":"error"';

/** One stream: a peer of the engine, and (with a token) a holder a cut-off of its subject ends. */
export class Stream implements Peer, Holder {
  /** Its place in the topic table, and its token's expiry timer. */
  readonly member: PushMember & { readonly data: { expiry: ClockTimer; deadline: number | undefined } };
  state: SessionState | undefined;
  /** Something was written since the last heartbeat tick. */
  wrote = false;
  /** Set once the stream ended, by the server (`CloseLabel`) or by the client going away. */
  ended: CloseMetricLabel | undefined;
  readonly body: ReadableStream<Uint8Array>;
  private queue: string[] = [];
  private queued = 0;
  private scheduled = false;
  private waiting = false;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private opening: Opening | undefined;

  constructor(
    readonly writer: StreamWriter,
    private readonly host: StreamHost,
  ) {
    this.member = {
      data: { topics: [], expiry: undefined, deadline: undefined },
      // Bun's publish never reaches a stream: membership is the topic table's alone.
      subscribe() {},
      push: (frame) => this.send(frame),
    };
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => {
          if (this.queue.length > 0) return this.handOver();
          this.waiting = true;
          this.host.drained(this);
        },
        cancel: () => this.end('client'),
      },
      { highWaterMark: 0 },
    );
  }

  /**
   * Resolves once the engine has answered each of `count` subscribes (ids 0 to count - 1), with the first
   * refusal in query order, or undefined when every one was `subscribed`.
   */
  answers(count: number): Promise<Record<string, unknown> | undefined> {
    return new Promise((resolve) => {
      const errors = new Map<number, Record<string, unknown>>();
      const done = () => {
        this.opening = undefined;
        const first = [...errors.keys()].sort((a, b) => a - b)[0];
        resolve(first === undefined ? undefined : errors.get(first));
      };
      this.opening = { remaining: count, errors, done };
      if (count === 0) done();
    });
  }

  send(frame: string): void {
    if (this.ended !== undefined) return;
    if (this.opening !== undefined && (frame.startsWith(SUBSCRIBED) || frame.startsWith(ERROR))) this.answered(frame);
    this.write(this.writer.write(frame));
  }

  /** Queues text for the client; ends the stream once more than `slow_consumer_bytes` wait. */
  write(text: string): void {
    if (text === '' || this.ended !== undefined) return;
    this.wrote = true;
    this.queue.push(text);
    // UTF-16 code units: what the text occupies here, and the bytes it becomes for ASCII.
    this.queued += text.length;
    if (this.queued > this.host.slowConsumerBytes) this.close('slow_consumer');
    else if (!this.scheduled) {
      this.scheduled = true;
      this.host.schedule(this);
    }
  }

  /** End of the turn: what was queued goes to Bun now if it asked for more, or at its next pull. */
  flush(): void {
    this.scheduled = false;
    if (this.waiting && this.queue.length > 0) this.handOver();
  }

  buffered(): number {
    return this.queued;
  }

  subscribe(topic: string): void {
    this.host.join(this.member, topic);
  }

  unsubscribe(topic: string): void {
    this.host.leave(this.member, topic);
  }

  identify(identity: Identity | undefined): void {
    this.host.identify(this, identity);
  }

  /**
   * The server ends the stream: what was queued is still delivered, unless the client is too slow to read it,
   * then a last comment names the cause (`text` replaces its close text).
   */
  close(cause: CloseLabel, text?: string): void {
    if (this.ended !== undefined) return;
    if (cause === 'slow_consumer') {
      this.queue = [];
      this.queued = 0;
      // An error, not a close: the connection is cut at once, and nothing queued is kept for a reader that is not there.
      this.controller.error(new Error('slow consumer'));
    } else {
      // Past the slow-consumer check: the last words go with what is queued, or not at all.
      const farewell = this.writer.farewell(cause, text);
      if (farewell !== '') this.queue.push(farewell);
      if (this.queue.length > 0) this.handOver();
      this.controller.close();
    }
    this.end(cause);
  }

  private handOver(): void {
    const text = this.queue.length === 1 ? this.queue[0]! : this.queue.join('');
    this.queue = [];
    this.queued = 0;
    this.waiting = false;
    this.controller.enqueue(encoder.encode(text));
  }

  private end(label: CloseMetricLabel): void {
    if (this.ended !== undefined) return;
    this.ended = label;
    this.opening?.done();
    this.host.ended(this, label);
  }

  private answered(frame: string): void {
    const opening = this.opening!;
    const answer = JSON.parse(frame) as Record<string, unknown>;
    if (typeof answer['id'] !== 'number') return;
    if (answer['type'] === 'error' && !opening.errors.has(answer['id'])) opening.errors.set(answer['id'], answer);
    opening.remaining -= 1;
    if (opening.remaining === 0) opening.done();
  }
}
