/**
 * Client messages of the multiplexed protocol `pgws.v1` for the frame fuzzer: well-formed frames of
 * every type, the same with fields missing, extra, of the wrong type or absurd (huge ids, deep nesting,
 * odd Unicode channel names), and texts that are not frames at all. Each comes with what the server
 * must do: answer it once (and, for a frame made well-formed, echo its id), or close with a code.
 */
import { randomJson } from './payloads.ts';
import type { Rng } from './random.ts';

/** One fuzzed text frame. */
export interface FuzzMessage {
  readonly text: string;
  readonly how: string;
  /** The close code the frame must cause (1009 for one over max_message_bytes); else it must be answered. */
  readonly closes?: number;
  /** The id of a frame built well-formed: its answer must echo it. */
  readonly echoes?: string;
}

/** The channels the fuzzed bridge declares: with a schema and publish, raw with publish, and read-only. */
export interface FuzzChannels {
  readonly schema: string;
  readonly raw: string;
  readonly readOnly: string;
}

const TYPES = ['subscribe', 'unsubscribe', 'publish', 'auth', 'ping'] as const;

/** Channel names around every rule: empty, 63/64 bytes, NUL, lone surrogates, look-alikes, prototype names. */
const ODD_CHANNELS = [
  '',
  ' ',
  'x'.repeat(63),
  'x'.repeat(64),
  `${'é'.repeat(31)}x`,
  'é'.repeat(32),
  '🚀'.repeat(15),
  '🚀'.repeat(16),
  'a\u0000b',
  '\ud800',
  'lone \udc00 low',
  '\u202eevil',
  'e\u0301',
  '日本語のチャンネル',
  '__proto__',
  'constructor',
  '*',
  'a/b',
  '%2F',
  'line\nbreak',
  'Fuzz Mux',
];

/** Ids: valid ones of every shape, and values that are not ids at all. */
function randomId(rng: Rng): unknown {
  return rng.weighted<() => unknown>([
    [4, () => rng.int(-1e6, 1e6)],
    [3, () => `id-${rng.int(0, 1e9)}`],
    [1, () => rng.pick(['', ' ', '0', 'é🚀', '\u0000', '\ud800'])],
    [1, () => rng.pick([0, -0, -1.5, 1e308, -1e308, 5e-324, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER])],
    [1, () => 'i'.repeat(rng.int(1000, 30_000))],
    [2, () => rng.pick([null, true, false, {}, [], [1], { id: 1 }])],
    [1, () => randomJson(rng, 3)],
  ])();
}

/** A JSON value nested `depth` deep, as an object (so JSON.stringify is never asked to recurse that far). */
const deep = (depth: number, leaf = '1') => `${'{"a":'.repeat(depth)}${leaf}${'}'.repeat(depth)}`;
const deepArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

function channelFor(rng: Rng, channels: FuzzChannels): string {
  return rng.weighted<() => string>([
    [6, () => rng.pick([channels.schema, channels.raw, channels.readOnly])],
    [2, () => rng.pick(ODD_CHANNELS)],
    [1, () => `fz_mux_${rng.int(0, 40)}`],
  ])();
}

function payloadFor(rng: Rng): unknown {
  return rng.weighted<() => unknown>([
    [3, () => ({ id: rng.int(-5, 1e6), note: rng.chance(0.5) ? 'n' : rng.int(0, 9) })],
    [2, () => `text ${rng.int(0, 1e6)}`],
    [3, () => randomJson(rng, 4)],
    [1, () => 'p'.repeat(rng.int(7990, 8010))],
    [1, () => ({ id: 1, note: 'é'.repeat(rng.int(3990, 4010)) })],
  ])();
}

function randomFilter(rng: Rng): unknown {
  return rng.weighted<() => unknown>([
    [2, () => ({ id: rng.int(0, 10) })],
    [
      2,
      () => ({
        [rng.pick(['id', 'note', 'a.b', '', '.', 'a..b'])]: {
          [rng.pick(['eq', 'neq', 'in', 'nin', 'lt', 'lte', 'gt', 'gte', 'like'])]: randomJson(rng, 2),
        },
      }),
    ],
    [2, () => randomJson(rng, 3)],
    [1, () => Object.fromEntries(Array.from({ length: rng.int(60, 70) }, (_, i) => [`k${i}`, i]))],
  ])();
}

/** A well-formed frame of a random type, with a fresh id the answer must echo. */
function wellFormed(rng: Rng, channels: FuzzChannels, id: string): Record<string, unknown> {
  const type = rng.pick(TYPES);
  const channel = rng.pick([channels.schema, channels.raw, channels.readOnly]);
  switch (type) {
    case 'subscribe':
      return {
        type,
        id,
        channel,
        ...(rng.chance(0.3) ? { since: { epoch: rng.pick(['e', '']), seq: rng.int(0, 100) } } : {}),
        ...(channel === channels.schema && rng.chance(0.4) ? { filter: { id: { gte: rng.int(0, 10) } } } : {}),
      };
    case 'unsubscribe':
      return { type, id, channel };
    case 'publish':
      return { type, id, channel, payload: payloadFor(rng) };
    case 'auth':
      return { type, id, token: `ey.${rng.int(0, 1e6)}.sig` };
    default:
      return { type, id };
  }
}

/** Changes one thing about a frame object: a field replaced, removed or added. */
function mutateObject(rng: Rng, frame: Record<string, unknown>, channels: FuzzChannels): void {
  const key = rng.pick(['type', 'id', 'channel', 'since', 'filter', 'payload', 'token', 'extra', '__proto__']);
  const set = (name: string, value: unknown) => {
    Object.defineProperty(frame, name, { value, enumerable: true, writable: true, configurable: true });
  };
  rng.weighted<() => void>([
    [2, () => delete frame[key]],
    [1, () => set('type', rng.pick(['Subscribe', 'PING', 'ping ', 'pub', '', 'message', 'ready', 'error']))],
    [2, () => set('id', randomId(rng))],
    [2, () => set('channel', rng.chance(0.5) ? channelFor(rng, channels) : randomJson(rng, 2))],
    [
      2,
      () =>
        set(
          'since',
          rng.pick<unknown>([
            { epoch: 'e', seq: -1 },
            { epoch: 'e', seq: 1.5 },
            { epoch: 1, seq: 0 },
            { seq: 0 },
            { epoch: 'e' },
            { epoch: 'e', seq: 2 ** 60 },
            { epoch: 'x'.repeat(5000), seq: 0 },
            randomJson(rng, 2),
          ]),
        ),
    ],
    [2, () => set('filter', randomFilter(rng))],
    [1, () => set('payload', payloadFor(rng))],
    [1, () => set('token', randomJson(rng, 2))],
    // An own property even for "__proto__", which plain assignment would turn into a prototype change.
    [1, () => set(key, randomJson(rng, 2))],
  ])();
}

/** Changes the text of a frame: cut, spliced, prefixed, or nested past any recursion limit. */
function mutateText(rng: Rng, text: string): string {
  const at = rng.int(0, text.length);
  return rng.weighted<() => string>([
    [2, () => text.slice(0, at)],
    [2, () => `${text.slice(0, at)}${rng.pick(['"', '}', ',', '\\', '\u0000', 'é', ':', 'null'])}${text.slice(at)}`],
    [1, () => `\ufeff${text}`],
    [1, () => ` \n\t${text}\r\n`],
    [1, () => (text.startsWith('{') ? `{"type":"ping","type":"subscribe",${text.slice(1)}` : text)],
    [1, () => `[${text}]`],
    [1, () => `${text}${text}`],
  ])();
}

/** One random message: well-formed (30%), a mutated frame, a mutated text, a non-frame, deep nesting, or oversize. */
export function randomMessage(rng: Rng, channels: FuzzChannels, serial: number): FuzzMessage {
  const id = `fz-${serial}`;
  return rng.weighted<() => FuzzMessage>([
    [30, () => ({ text: JSON.stringify(wellFormed(rng, channels, id)), how: 'well-formed', echoes: id })],
    [
      35,
      () => {
        const frame = wellFormed(rng, channels, id);
        for (let i = rng.int(1, 3); i > 0; i--) mutateObject(rng, frame, channels);
        return { text: JSON.stringify(frame), how: 'mutated frame' };
      },
    ],
    [15, () => ({ text: mutateText(rng, JSON.stringify(wellFormed(rng, channels, id))), how: 'mutated text' })],
    [
      8,
      () => ({
        text: rng.pick([
          '',
          ' ',
          'null',
          'true',
          '0',
          '"ping"',
          '[]',
          '{}',
          '{"type":null}',
          'ping',
          '\u0000',
          '{"type":"ping"',
        ]),
        how: 'not a frame',
      }),
    ],
    [
      6,
      () => {
        const depth = rng.int(100, 20_000);
        const where = rng.pick(['payload', 'filter', 'id', 'since', 'channel']);
        const value = rng.chance(0.5) ? deepArray(depth) : deep(Math.min(depth, 10_000));
        const type = rng.pick(['publish', 'subscribe', 'ping']);
        return {
          text: `{"type":"${type}","channel":${JSON.stringify(channels.schema)},"${where}":${value}}`,
          how: 'deep nesting',
        };
      },
    ],
    [
      1,
      () => ({ text: `{"type":"ping","pad":"${'x'.repeat(rng.int(65_537, 70_000))}"}`, how: 'oversize', closes: 1009 }),
    ],
  ])();
}
