/**
 * Payload generators for the schema fuzzer: a few inline schemas covering every keyword the bridge
 * supports, a valid-value generator for each, random JSON, and mutations of valid payloads at the value
 * and at the text level (numbers like 1e400 and -0, `__proto__` keys, deep nesting, escapes, long strings).
 */
import type { Rng } from './random.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** An own `__proto__` key, as JSON.parse makes one (an object literal would re-parent instead). */
function withProto(target: Record<string, unknown>, value: unknown): Record<string, unknown> {
  Object.defineProperty(target, '__proto__', { value, writable: true, enumerable: true, configurable: true });
  return target;
}

const WORDS = [
  'a',
  'paid',
  'new',
  'shipped',
  'x',
  '',
  ' ',
  'é',
  '🚀',
  '\u0000',
  '\n',
  '"',
  '\\',
  '\u2028',
  'DROP TABLE t;',
  '__proto__',
  'constructor',
  'toString',
  '\ud800',
  '\udfff',
];

function randomString(rng: Rng, max = 24): string {
  let text = '';
  const length = rng.int(0, max);
  while (text.length < length) text += rng.chance(0.6) ? String.fromCharCode(rng.int(0x20, 0x7e)) : rng.pick(WORDS);
  return text;
}

const NUMBERS = [
  0,
  -0,
  1,
  -1,
  1.5,
  0.1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  1e308,
  -1e308,
  5e-324,
  1e15,
  1e15 + 1,
  999_999_999,
  1e9,
  123.456,
];

/** Any JSON value, depth-limited. */
export function randomJson(rng: Rng, depth = 3): Json {
  const kind = depth <= 0 ? rng.int(0, 3) : rng.int(0, 5);
  switch (kind) {
    case 0:
      return rng.pick([null, true, false]);
    case 1:
      return rng.chance(0.5) ? rng.pick(NUMBERS) : rng.int(-1000, 1000) * (rng.chance(0.3) ? 0.25 : 1);
    case 2:
    case 3:
      return randomString(rng);
    case 4:
      return Array.from({ length: rng.int(0, 4) }, () => randomJson(rng, depth - 1));
    default: {
      const object: Record<string, Json> = {};
      for (let i = rng.int(0, 4); i > 0; i--) {
        const key = rng.pick([
          'id',
          'status',
          'total',
          'tags',
          'meta',
          'v',
          'url',
          'note',
          'at',
          'ref',
          'email',
          randomString(rng, 6),
        ]);
        if (key === '__proto__') withProto(object, randomJson(rng, depth - 1));
        else object[key] = randomJson(rng, depth - 1);
      }
      return object;
    }
  }
}

/** A fuzzed channel: its inline schema (written to TOML as is) and a generator of values it accepts. */
export interface SchemaCase {
  readonly key: string;
  readonly definition: Record<string, unknown>;
  valid(rng: Rng): Json;
}

const hex = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.int(0, 15).toString(16)).join('');

export const SCHEMA_CASES: readonly SchemaCase[] = [
  {
    key: 'order',
    definition: {
      type: 'object',
      required: ['id', 'status'],
      additionalProperties: false,
      properties: withProto(
        {
          id: { type: 'integer', minimum: 1, maximum: 1_000_000_000_000_000 },
          status: { enum: ['new', 'paid', 'shipped'] },
          total: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1_000_000_000 },
          email: { type: 'string', format: 'email' },
          at: { type: 'string', format: 'date-time' },
          ref: { type: 'string', format: 'uuid' },
          tags: {
            type: 'array',
            maxItems: 5,
            items: { type: 'string', minLength: 1, maxLength: 10, pattern: '^[a-z]+$' },
          },
          note: { type: ['string', 'null'], maxLength: 200, default: 'none' },
          meta: { type: 'object', additionalProperties: { type: ['number', 'boolean'] } },
          kind: { const: 'order' },
        },
        { type: 'object', properties: { polluted: { const: false } } },
      ),
    },
    valid(rng) {
      const value: Record<string, Json> = { id: rng.int(1, 2 ** 40), status: rng.pick(['new', 'paid', 'shipped']) };
      if (rng.chance(0.5)) value['total'] = rng.int(1, 99_999) / 100;
      if (rng.chance(0.3)) value['email'] = `${rng.pick(['a', 'bob', 'x.y'])}@example.com`;
      if (rng.chance(0.3)) value['at'] = new Date(rng.int(0, 2e12)).toISOString();
      if (rng.chance(0.3))
        value['ref'] = `${hex(rng, 8)}-${hex(rng, 4)}-4${hex(rng, 3)}-8${hex(rng, 3)}-${hex(rng, 12)}`;
      if (rng.chance(0.4))
        value['tags'] = Array.from({ length: rng.int(0, 5) }, () => rng.pick(['a', 'red', 'zzz', 'sale']));
      if (rng.chance(0.3)) value['note'] = rng.chance(0.3) ? null : randomString(rng, 40);
      if (rng.chance(0.3)) value['meta'] = { n: rng.int(-5, 5), flag: rng.chance(0.5) };
      if (rng.chance(0.3)) value['kind'] = 'order';
      if (rng.chance(0.2)) withProto(value, { polluted: false });
      return value;
    },
  },
  {
    key: 'union',
    definition: {
      anyOf: [
        { type: 'integer', minimum: 0 },
        { type: 'string', minLength: 2, format: 'date' },
        { type: 'array', minItems: 1, items: { type: 'boolean' } },
        { type: 'null' },
      ],
    },
    valid: (rng) =>
      rng.pick<() => Json>([
        () => rng.int(0, 1e6),
        () => `20${rng.int(10, 29)}-0${rng.int(1, 9)}-1${rng.int(0, 9)}`,
        () => Array.from({ length: rng.int(1, 4) }, () => rng.chance(0.5)),
        () => null,
      ])(),
  },
  {
    key: 'anything',
    definition: { description: 'any JSON value at all' },
    valid: (rng) => randomJson(rng),
  },
  {
    key: 'exact',
    definition: {
      type: 'object',
      required: ['v'],
      properties: {
        v: { const: { a: [1, 2.5, 'x'], b: '√' } },
        n: { type: 'number', minimum: -1, maximum: 1 },
        s: { type: 'string', maxLength: 3 },
      },
    },
    valid: (rng) => ({
      v: { b: '√', a: [1, 2.5, 'x'] },
      ...(rng.chance(0.5) ? { n: rng.pick([-1, -0, 0, 0.5, 1]) } : {}),
      ...(rng.chance(0.5) ? { s: rng.pick(['', 'ab', '💩💩💩']) } : {}),
    }),
  },
  {
    key: 'links',
    definition: {
      type: 'object',
      properties: {
        url: { type: 'string', format: 'uri' },
        list: { type: 'array', items: { type: 'object', required: ['k'], properties: { k: { type: 'string' } } } },
      },
      additionalProperties: { type: 'integer' },
    },
    valid: (rng) => ({
      url: rng.pick(['https://example.com/a?b=c', 'mailto:a@b.c', 'urn:isbn:1']),
      list: Array.from({ length: rng.int(0, 3) }, () => ({ k: randomString(rng, 5) })),
      extra: rng.int(-9, 9),
    }),
  },
];

/** Changes one value somewhere inside a valid one: the "almost right" payload a buggy producer sends. */
function mutateValue(rng: Rng, value: Json, depth = 0): Json {
  if (value !== null && typeof value === 'object' && rng.chance(0.7 - depth * 0.2)) {
    if (Array.isArray(value)) {
      const copy = value.slice();
      if (copy.length === 0 || rng.chance(0.2)) copy.push(randomJson(rng, 1));
      else {
        const i = rng.int(0, copy.length - 1);
        copy[i] = mutateValue(rng, copy[i] as Json, depth + 1);
      }
      return copy;
    }
    const copy: Record<string, Json> = {};
    for (const key of Object.keys(value)) {
      if (key === '__proto__') withProto(copy, value[key]);
      else copy[key] = value[key] as Json;
    }
    const keys = Object.keys(copy);
    const action = rng.int(0, 3);
    const key = keys.length > 0 ? rng.pick(keys) : 'id';
    if (action === 0) delete copy[key];
    else if (action === 1) copy[rng.pick(['extra', 'ID', 'id ', 'constructor', 'toString', key])] = randomJson(rng, 1);
    else if (action === 2 && key === '__proto__') withProto(copy, randomJson(rng, 1));
    else copy[key] = mutateValue(rng, copy[key] ?? null, depth + 1);
    return copy;
  }
  if (typeof value === 'number')
    return rng.pick([
      value + 1,
      value - 1,
      -value,
      value / 3,
      value * 1e300,
      0,
      -0,
      2 ** 53 + 1,
      String(value),
    ]) as Json;
  if (typeof value === 'string')
    return rng.pick([
      `${value}!`,
      '',
      value.toUpperCase(),
      value.repeat(30),
      `${value}\u0000`,
      `${value}\ud800`,
      Number(value.length),
    ]) as Json;
  return randomJson(rng, 1);
}

/** Text-level edits JSON.stringify can never produce: odd number spellings, escapes, duplicates, damage. */
function mutateText(rng: Rng, text: string): string {
  const at = rng.int(0, text.length);
  return rng.pick<() => string>([
    () => text.slice(0, at),
    () => text.slice(0, at) + rng.pick(['}', ']', ',', '"', ':', '\\', ' ', 'x', '\u0000', '\ud800']) + text.slice(at),
    () => text.slice(0, at) + text.slice(at + 1),
    () =>
      text.replace(
        /-?\d+(\.\d+)?(e[+-]?\d+)?/i,
        rng.pick([
          '1e308',
          '-0',
          '1.0',
          '1e400',
          '-1e400',
          '1E+2',
          '-1e-400',
          '0.0000001',
          '9007199254740993',
          '123456789012345678901234567890',
          '1.5e3',
          '00',
          '1.',
          '.5',
          '+1',
          '0x10',
          'NaN',
          'Infinity',
        ]),
      ),
    () =>
      text.replace(
        /"([^"\\]*)"/,
        rng.pick(['"\\ud800"', '"\\u0000"', '"\\udfff\\ud800"', '"\\u00e9"', '"\\/"', '"\\x41"', '"\t"']),
      ),
    () =>
      text.startsWith('{') && text.length > 2
        ? `{"__proto__":{"polluted":true},${text.slice(1)}`
        : `{"__proto__":${text}}`,
    () => (text.startsWith('{') && text.length > 2 ? `{"id":"dup",${text.slice(1)}` : `[${text},${text}]`),
    () => ` \n\t${text}\r\n `,
    () => `\ufeff${text}`,
  ])();
}

/** One fuzz payload and how it was made (for the tally). */
export interface Payload {
  readonly text: string;
  readonly how: string;
}

/** Deeply nested arrays or objects, up to the 7999 bytes a NOTIFY can carry. */
function nested(rng: Rng): string {
  const depth = rng.int(100, 3999);
  if (rng.chance(0.5)) return `${'['.repeat(depth)}${rng.chance(0.8) ? ']'.repeat(depth) : ''}`;
  const d = Math.min(depth, 1140);
  return `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`;
}

/** A long string payload, up to 7999 bytes of UTF-8 (or, sometimes, past PostgreSQL's 8000-byte limit). */
function long(rng: Rng): string {
  const unit = rng.pick(['x', 'é', '€', '🚀']);
  const bytes = Buffer.byteLength(unit);
  const target = rng.chance(0.1) ? rng.int(8000, 9000) : rng.int(4000, 7999 - 8);
  const body = unit.repeat(Math.floor(target / bytes));
  return rng.pick([JSON.stringify(body), `{"id":1,"status":"new","note":${JSON.stringify(body)}}`, body]);
}

/** A random payload for `schema`: valid, mutated, random JSON, odd text, nesting or long strings. */
export function randomPayload(rng: Rng, schema: SchemaCase): Payload {
  return rng.weighted<() => Payload>([
    [3, () => ({ text: JSON.stringify(schema.valid(rng)), how: 'valid' })],
    [5, () => ({ text: JSON.stringify(mutateValue(rng, schema.valid(rng))), how: 'mutated value' })],
    [4, () => ({ text: mutateText(rng, JSON.stringify(schema.valid(rng))), how: 'mutated text' })],
    [2, () => ({ text: JSON.stringify(randomJson(rng)), how: 'random json' })],
    [1, () => ({ text: randomString(rng, 40), how: 'random text' })],
    [1, () => ({ text: nested(rng), how: 'nested' })],
    [1, () => ({ text: long(rng), how: 'long' })],
    [
      1,
      () => ({
        text: rng.pick([
          '',
          ' ',
          'null',
          'true',
          '0',
          '-0',
          '1e308',
          '1e400',
          '""',
          '[]',
          '{}',
          '{"__proto__":null}',
          '\u0000',
        ]),
        how: 'tiny',
      }),
    ],
  ])();
}
