/**
 * Channel paths for the upgrade fuzzer, and the expected outcome computed here, independently of
 * src/channels/name.ts: a path names a channel when it is one segment that percent-decodes to 1..63 bytes of
 * well-formed UTF-8 without NUL. Anything else must be refused with 400.
 */
import type { Rng } from './random.ts';

const PIECES = [
  'a',
  'Z',
  '0',
  '_',
  '-',
  '.',
  '~',
  ' ',
  '"',
  "'",
  ';',
  ':',
  '@',
  '!',
  '$',
  '&',
  '+',
  ',',
  '=',
  '*',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  '|',
  '^',
  '`',
  '<',
  '>',
  'é',
  'ß',
  'ü',
  '€',
  'ж',
  '中',
  'ע',
  '\u0301',
  '\u200b',
  '\ufeff',
  '\ufffd',
  '🚀',
  '👩‍👩‍👧',
  '\ud800',
  '\udfff',
  '\u0000',
  '\u0001',
  '\u007f',
  '\t',
  '\n',
];

const ESCAPES = [
  '%20',
  '%2F',
  '%2f',
  '%2E',
  '%2e',
  '%25',
  '%00',
  '%0A',
  '%C3%A9',
  '%c3%a9',
  '%E2%82%AC',
  '%F0%9F%9A%80',
  '%3F',
  '%23',
  '%5C',
  '%22',
  '%',
  '%%',
  '%G1',
  '%1',
  '%zz',
  '%C3',
  '%C3%28',
  '%E0%A4%A',
  '%ED%A0%80',
  '%F4%90%80%80',
  '%C0%AF',
  '%FF',
  '%80',
  '%EF%BB%BF',
];

const STRUCTURE = [
  '/',
  '//',
  '\\',
  '.',
  '..',
  './',
  '../',
  '/..',
  '/.',
  '?',
  '?a=b',
  '?x=%zz',
  '#',
  '#frag',
  '?q#f',
  ';p=1',
];

function piece(rng: Rng): string {
  return rng.weighted<() => string>([
    [5, () => rng.pick(PIECES)],
    [3, () => rng.pick(ESCAPES)],
    [2, () => encodeURIComponent(rng.pick(PIECES.filter((p) => p.isWellFormed())))],
    [1, () => rng.pick(STRUCTURE)],
    [1, () => String.fromCodePoint(rng.int(0x20, 0x2fff))],
  ])();
}

/** What follows `ws://host/`: random pieces, sometimes near the 63-byte limit, sometimes far past it. */
export function randomChannelPath(rng: Rng): string {
  return rng.weighted<() => string>([
    [8, () => Array.from({ length: rng.int(1, 8) }, () => piece(rng)).join('')],
    [
      2,
      () =>
        rng.pick(['', '.', '..', '%2e', '%2e%2E', '/', '%2F', 'a/b', 'a%2Fb', '?', '#', '%00', 'a%00b', '%', 'a b']),
    ],
    [
      2,
      () => {
        const unit = rng.pick(['a', 'é', '%C3%A9', '€', '%F0%9F%9A%80', 'x%20']);
        const units = rng.pick([15, 16, 20, 21, 31, 32, 62, 63, 64, 100, 2000]);
        return unit.repeat(units);
      },
    ],
    [1, () => 'x'.repeat(rng.int(60, 66))],
    [1, () => 'y'.repeat(rng.pick([200, 4000, 12_000]))],
  ])();
}

const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The channel a request path must open, or undefined when it must be refused with 400. */
export function expectedChannel(pathname: string): string | undefined {
  if (!pathname.startsWith('/')) return undefined;
  const segment = pathname.slice(1);
  if (segment.includes('/')) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return undefined;
  }
  if (name.length === 0 || name.includes('\u0000') || loneSurrogate.test(name)) return undefined;
  return Buffer.byteLength(name, 'utf8') <= 63 ? name : undefined;
}
