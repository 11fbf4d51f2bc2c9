/**
 * The cursor of a stream (`GET /events`): one opaque text holding the position `{epoch, seq}` of every channel
 * of that stream, sent as each event's SSE `id:` and read back from `Last-Event-ID` or `?since=`. A leaf, so the
 * server that writes it and the client that builds one from its own positions share one spelling.
 *
 * Format: `1.<channels>.<seqs>`. `<channels>` is base64url (RFC 4648 §5) of the UTF-8 JSON `[[channel, epoch], ...]`
 * and `<seqs>` the seqs in the same order, in decimal, joined by `~`. Every character is URL-safe and unchanged by
 * query-string decoding, so a cursor pasted into `?since=` needs no escaping. The seqs stand apart because they
 * change with every message while the channels and epochs change only at a `gap`: a writer re-encodes the middle
 * part only then. An epoch is any string, so the positions of durable channels (epochs kept in the database)
 * fit as they are.
 */

/** One channel's position in a cursor. */
export interface CursorPosition {
  readonly epoch: string;
  readonly seq: number;
}

const VERSION = '1';
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const DECIMAL = /^(0|[1-9]\d{0,15})$/;

/** base64url of a text's UTF-8, without padding (btoa is in browsers and Bun alike; Buffer is not). */
function toBase64Url(text: string): string {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): string | undefined {
  if (!BASE64URL.test(text)) return undefined;
  try {
    const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** The part of a cursor that changes only with its channels and epochs: `1.<channels>.` (see the format above). */
export function cursorPrefix(entries: readonly (readonly [channel: string, epoch: string])[]): string {
  return `${VERSION}.${toBase64Url(JSON.stringify(entries))}.`;
}

/** Encodes positions, in the order given (a stream's channel order). */
export function encodeCursor(positions: ReadonlyMap<string, CursorPosition>): string {
  const entries = [...positions].map(([channel, { epoch }]) => [channel, epoch] as const);
  return cursorPrefix(entries) + [...positions.values()].map(({ seq }) => seq).join('~');
}

/**
 * Reads a cursor; undefined for anything that is not one this format wrote, whole (a wrong version, bad base64,
 * a seq that is not a safe non-negative integer, counts that differ, a channel twice). Never throws: what cannot
 * be read is treated as no cursor by the caller.
 */
export function decodeCursor(text: string): Map<string, CursorPosition> | undefined {
  const [version, channels, seqs, ...rest] = text.split('.');
  if (version !== VERSION || channels === undefined || seqs === undefined || rest.length > 0) return undefined;
  const json = fromBase64Url(channels);
  if (json === undefined) return undefined;
  let entries: unknown;
  try {
    entries = JSON.parse(json);
  } catch {
    return undefined;
  }
  const numbers = seqs === '' ? [] : seqs.split('~');
  if (!Array.isArray(entries) || entries.length !== numbers.length) return undefined;
  const positions = new Map<string, CursorPosition>();
  for (const [i, entry] of entries.entries()) {
    const text = numbers[i]!;
    if (!Array.isArray(entry) || entry.length !== 2 || !DECIMAL.test(text)) return undefined;
    const [channel, epoch] = entry as unknown[];
    const seq = Number(text);
    if (typeof channel !== 'string' || typeof epoch !== 'string' || !Number.isSafeInteger(seq)) return undefined;
    if (positions.has(channel)) return undefined;
    positions.set(channel, { epoch, seq });
  }
  return positions;
}
