/**
 * How a `GET /events` stream writes what the protocol engine sends it: each pgws.v1 server frame becomes a
 * Server-Sent Event (`event: message`, `id:` the stream's cursor, `data:` the frame without its `type`) or an
 * NDJSON line (the frame itself, `message` with its `epoch` added). Frames a stream has no use for (`ready`,
 * answers to frames it never sends) are dropped. Pure: text in, text out; the stream that writes it is
 * `streams.ts`.
 *
 * The hot path is `message`: a channel's subscribers on one topic all get the same frame text, so what depends
 * on the frame alone (its channel, seq and the re-framed data) is worked out once per frame and kept for the
 * next stream; per stream only the cursor is joined in.
 */
import { type CursorPosition, cursorPrefix } from '../base/cursor.ts';
import { Closes, type HeldTransport } from '../base/wire.ts';

/** The two ways a stream writes: `text/event-stream` or `application/x-ndjson`. */
export type StreamFormat = Exclude<HeldTransport, 'ws'>;

/** The `Content-Type` of each format. */
export const CONTENT_TYPES: Readonly<Record<StreamFormat, string>> = {
  sse: 'text/event-stream; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
};

// `encodeMessage` (protocol/replies.ts) writes every message frame as
// {"type":"message","channel":C,"seq":N,"payload":P}: read back by position, never by parsing the payload.
const MESSAGE = '{"type":"message",';
const CHANNEL_AT = '{"type":"message","channel":'.length;
const SEQ = ',"seq":';
const PAYLOAD = ',"payload":';

/** What a message frame says, read once per frame. */
interface Message {
  readonly frame: string;
  readonly channel: string;
  /** Undefined on a message without a seq. */
  readonly seq: number | undefined;
  /** Where `,"payload":` starts. */
  readonly payloadAt: number;
  /** The SSE data: the frame without `"type":"message",`. */
  readonly data: string;
}

let lastMessage: Message | undefined;

function readMessage(frame: string): Message {
  if (lastMessage?.frame === frame) return lastMessage;
  // A channel name is a JSON string: it ends at the first quote no backslash escapes.
  let end = CHANNEL_AT + 1;
  while (frame.charCodeAt(end) !== 34) end += frame.charCodeAt(end) === 92 ? 2 : 1;
  const channel = JSON.parse(frame.slice(CHANNEL_AT, end + 1)) as string;
  const payloadAt = frame.indexOf(PAYLOAD, end);
  // No seq (`encodeUnnumbered`): a plain NOTIFY on a durable channel, which moves no position.
  const seq = payloadAt === end + 1 ? undefined : Number(frame.slice(end + 1 + SEQ.length, payloadAt));
  lastMessage = { frame, channel, seq, payloadAt, data: `{${frame.slice(MESSAGE.length)}` };
  return lastMessage;
}

let lastLine = { frame: '', epoch: '', line: '' };

/** The NDJSON line of a message: the frame with the stream's epoch of its channel added. */
function messageLine(message: Message, epoch: string): string {
  if (lastLine.frame === message.frame && lastLine.epoch === epoch) return lastLine.line;
  const { frame, payloadAt } = message;
  const line = `${frame.slice(0, payloadAt)},"epoch":${JSON.stringify(epoch)}${frame.slice(payloadAt)}\n`;
  lastLine = { frame, epoch, line };
  return line;
}

/**
 * One stream's writer: its format and its cursor, the position of every channel of the stream in the order of
 * its query. A channel has a position once it was resumed from one (the request's cursor) or its `subscribed`
 * went out; until then it is left out of the cursor, so a reconnect subscribes it afresh.
 */
export class StreamWriter {
  private readonly index = new Map<string, number>();
  private readonly epochs: (string | undefined)[];
  private readonly seqs: number[];
  private prefix = '';
  private positioned: number[] = [];

  constructor(
    readonly format: StreamFormat,
    private readonly channels: readonly string[],
    since: ReadonlyMap<string, CursorPosition> | undefined,
  ) {
    this.epochs = channels.map((channel) => since?.get(channel)?.epoch);
    this.seqs = channels.map((channel) => since?.get(channel)?.seq ?? 0);
    for (const [i, channel] of channels.entries()) this.index.set(channel, i);
    this.reprefix();
  }

  /** The cursor: every positioned channel's epoch and seq. */
  get cursor(): string {
    let text = this.prefix;
    for (let i = 0; i < this.positioned.length; i++) {
      text += (i === 0 ? '' : '~') + this.seqs[this.positioned[i]!];
    }
    return text;
  }

  /** What to write for one server frame; '' for a frame the stream does not carry. */
  write(frame: string): string {
    if (frame.startsWith(MESSAGE)) {
      const message = readMessage(frame);
      const at = this.index.get(message.channel);
      if (at === undefined) return '';
      if (message.seq !== undefined) this.seqs[at] = message.seq;
      if (this.format === 'ndjson') return messageLine(message, this.epochs[at] ?? '');
      return `event: message\nid: ${this.cursor}\ndata: ${message.data}\n\n`;
    }
    // Anything else is rare (once per channel, or per broken stream): parsed whole.
    const parsed = JSON.parse(frame) as { type: string; channel?: string; epoch?: string; seq?: number };
    const { type, channel, epoch, seq, ...rest } = parsed;
    if ((type !== 'subscribed' && type !== 'gap') || channel === undefined) return '';
    const at = this.index.get(channel);
    if (at === undefined || epoch === undefined || seq === undefined) return '';
    this.position(at, epoch, seq);
    const recovered = (rest as { recovered?: boolean }).recovered;
    if (this.format === 'ndjson') return `${JSON.stringify({ type, channel, epoch, seq, recovered })}\n`;
    // `subscribed` carries an `id:` too: a stream that breaks before its first message resumes exactly.
    return `event: ${type}\nid: ${this.cursor}\ndata: ${JSON.stringify({ channel, epoch, seq, recovered })}\n\n`;
  }

  /** What keeps an idle stream from looking dead to proxies: an SSE comment, an empty NDJSON line. */
  heartbeat(): string {
    return this.format === 'sse' ? ':\n\n' : '\n';
  }

  /**
   * The last words of a stream the server ends: an SSE comment naming the close code and label a socket would
   * have had, and its text (one line; NDJSON has no comments). The client library reads it back as that close.
   */
  farewell(cause: keyof typeof Closes, text: string = Closes[cause].text): string {
    return this.format === 'sse' ? `: closed ${Closes[cause].code} ${cause}: ${text.replace(/[\r\n]+/g, ' ')}\n\n` : '';
  }

  private position(at: number, epoch: string, seq: number): void {
    const moved = this.epochs[at] !== epoch;
    this.epochs[at] = epoch;
    this.seqs[at] = seq;
    if (moved) this.reprefix();
  }

  private reprefix(): void {
    this.positioned = [];
    const entries: [string, string][] = [];
    for (const [i, channel] of this.channels.entries()) {
      const epoch = this.epochs[i];
      if (epoch === undefined) continue;
      this.positioned.push(i);
      entries.push([channel, epoch]);
    }
    this.prefix = cursorPrefix(entries);
  }
}
