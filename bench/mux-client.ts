/**
 * The benchmark's `pgws.v1` client, in one file so that it can be swapped for another: opening a socket
 * on `/` (with a token as `bearer.T`) up to `ready`, subscribing, and reading a `message` frame without
 * parsing its JSON, which the client processes do for every frame.
 */
import { BEARER_PREFIX, SUBPROTOCOL } from '../src/http/offer.ts';
import { opening, watchClose, within } from './wait.ts';

/** What one `subscribe` frame asks for. */
export interface Subscription {
  readonly channel: string;
  readonly filter?: unknown;
  readonly since?: { readonly epoch: string; readonly seq: number };
}

/** A `subscribed` answer: the channel's epoch and the seq its messages go on from. */
export type Subscribed = { readonly epoch: string; readonly seq: number; readonly recovered?: boolean };

/** Opens a socket offering `pgws.v1` (and `bearer.<token>`); resolves once `ready` came. */
export async function openMux(url: string, timeoutMs: number, token?: string) {
  const ws = new WebSocket(url, token === undefined ? [SUBPROTOCOL] : [SUBPROTOCOL, `${BEARER_PREFIX}${token}`]);
  const closed = watchClose(ws);
  const ready = Promise.withResolvers<void>();
  ws.onmessage = (event: MessageEvent) => {
    const text = event.data as string;
    if (text.startsWith('{"type":"ready"')) ready.resolve();
    else ready.reject(new Error(`a frame before ready: ${text.slice(0, 200)}`));
  };
  await opening(ws, closed, ready.promise, timeoutMs, 'ready');
  if (ws.protocol !== SUBPROTOCOL) {
    ws.close();
    throw new Error(`server selected subprotocol "${ws.protocol}"`);
  }
  return {
    ws,
    closed,
    /** Closes it and waits (5 s at most) until it is closed. */
    async close() {
      ws.close(1000);
      await within(closed, 5000, 'close');
    },
    /**
     * Sends every subscribe at once; resolves with the `subscribed` answers in order (any other fails it).
     * From the last answer on, every frame goes to `onFrame`: messages may follow it at once.
     */
    async subscribe(subscriptions: readonly Subscription[], onFrame: (text: string) => void, ms: number) {
      const answers: Subscribed[] = [];
      let answered = 0;
      const done = Promise.withResolvers<void>();
      const live = () => {
        ws.onmessage = (event: MessageEvent) => onFrame(event.data as string);
        done.resolve();
      };
      ws.onmessage = (event: MessageEvent) => {
        const text = event.data as string;
        const frame = JSON.parse(text) as Subscribed & { type?: string; id?: number };
        const id = frame.id ?? -1;
        if (frame.type !== 'subscribed' || !(id >= 0 && id < subscriptions.length) || answers[id] !== undefined) {
          return done.reject(new Error(`unexpected answer to subscribe: ${text.slice(0, 200)}`));
        }
        answers[id] = frame;
        answered += 1;
        if (answered === subscriptions.length) live();
      };
      if (subscriptions.length === 0) live();
      for (const [id, subscription] of subscriptions.entries()) {
        ws.send(JSON.stringify({ type: 'subscribe', id, ...subscription }));
      }
      await opening(ws, closed, done.promise, ms, 'subscribed answers');
      return answers;
    },
  };
}

// How the server starts a `message` frame (src/protocol/replies.ts); the channel's JSON string follows.
const MESSAGE_PREFIX = '{"type":"message","channel":';
const SEQ_KEY = ',"seq":';
const PAYLOAD_KEY = ',"payload":';

// The 10th character tells a `message` from every other server frame (gap, error, subscribed, …), and
// the 29th opens the channel's JSON string; cheaper than startsWith(MESSAGE_PREFIX).
const isMessage = (frame: string) =>
  frame.charCodeAt(9) === 109 && frame.charCodeAt(MESSAGE_PREFIX.length) === 34 && frame.charCodeAt(0) === 123;
// `key` (`,"…":`) sits at `i`: its comma and its closing colon are where they should be.
const keyAt = (frame: string, i: number, key: string) =>
  frame.charCodeAt(i) === 44 && frame.charCodeAt(i + key.length - 1) === 58;

/** Where {@link readMessage} puts a frame's server seq and payload offset; reused for every frame. */
export interface MessageParts {
  seq: number;
  payloadAt: number;
}

/**
 * Reads `{"type":"message","channel":"NAME","seq":N,"payload":P}` into `parts`; false for any other frame.
 * No benchmark channel needs escaping, so one quote ends NAME; character checks step over the rest, as
 * indexOf or startsWith cost 15-100 ns a frame, on client processes that are the bottleneck.
 */
export function readMessage(frame: string, parts: MessageParts): boolean {
  const quote = isMessage(frame) ? frame.indexOf('"', MESSAGE_PREFIX.length + 1) : -1;
  const digits = quote + 1 + SEQ_KEY.length;
  let end = digits;
  let seq = 0;
  for (let code = frame.charCodeAt(end); code >= 48 && code <= 57; code = frame.charCodeAt(++end)) {
    seq = seq * 10 + (code - 48);
  }
  if (quote < 0 || end === digits || !keyAt(frame, quote + 1, SEQ_KEY) || !keyAt(frame, end, PAYLOAD_KEY)) return false;
  parts.seq = seq;
  parts.payloadAt = end + PAYLOAD_KEY.length;
  return true;
}
