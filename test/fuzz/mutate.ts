/**
 * Mutations of a valid channels.toml for the config fuzzer: byte and bit flips, deleted, duplicated and
 * swapped lines, swapped values, random keys (prototype names, escapes, unknown schema keywords) and
 * values of the wrong type. Each returns the bytes main.ts would read (`Bun.file().text()` decodes as
 * UTF-8 with replacement, so flipped bytes are decoded the same way here).
 */
import type { Rng } from './random.ts';

const decoder = new TextDecoder();

const KEYS = [
  'frobnicate',
  'typ',
  'Type',
  'minimum',
  'default',
  'required',
  'properties',
  'items',
  'anyOf',
  'format',
  'pattern',
  'const',
  'enum',
  'additionalProperties',
  'maxLength',
  '$schema',
  '$ref',
  'not',
  'oneOf',
  'host',
  'port',
  'url',
  'schema',
  'description',
  'workers',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '"a\\nb"',
  '"\\u0000"',
  '"sp ace"',
  '"é"',
  '""',
  '"tab\\there"',
  '"quote\\"d"',
];

const VALUES = [
  '1',
  '-1',
  '0',
  '1.5',
  '1e400',
  'inf',
  '-inf',
  'nan',
  '9223372036854775807',
  '99999999999999999999',
  '0x10',
  '0o7',
  '0b1',
  'true',
  'false',
  '""',
  '"x"',
  '"\\u0000"',
  '"a\\nb"',
  '"(("',
  '"[a-"',
  '"\\\\p{Foo}"',
  '"date-time"',
  '"nope"',
  '[]',
  '[1, "a"]',
  '["id", "id"]',
  '[[]]',
  '{}',
  '{ type = "nope" }',
  '{ type = "string", frobnicate = 1 }',
  '1979-05-27',
  '1979-05-27T07:32:00Z',
  '07:32:00',
  "'''multi\nline'''",
  '"""x"""',
  '[{}]',
  '{ a = { b = { c = [1] } } }',
  '"./event.ts"',
  '"./event.ts#Nope"',
  '"./missing.ts"',
  '"./base.toml"',
  '"./"',
  '"#"',
  '"https://json-schema.org/draft/2020-12/schema"',
];

const TABLES = [
  '[server]',
  '[database]',
  '[channels]',
  '[channels.x]',
  '[channels.x.schema]',
  '[channels.constructor]',
  '[channels.__proto__]',
  '[channels.prototype]',
  '[channels.toString]',
  '[channels.""]',
  '[channels."a/b"]',
  `[channels.${'x'.repeat(70)}]`,
  '[channels."nul\\u0000"]',
  '[[channels]]',
  '[server.nested]',
  '[channels."Order Events".schema.properties.x]',
  '[channels."Order Events".schema.properties.__proto__]',
  '[channels."Order Events".schema.constructor]',
  '[channels.plain.schema]',
];

type Mutation = (rng: Rng, lines: string[]) => string[];

const keyValue = /^(\s*)("[^"]*"|[A-Za-z0-9_$-]+)\s*=\s*(.*)$/;

function anyLine(rng: Rng, lines: readonly string[]): number {
  return rng.int(0, Math.max(0, lines.length - 1));
}

function assignmentLines(lines: readonly string[]): number[] {
  return lines.flatMap((line, i) => (keyValue.test(line) ? [i] : []));
}

const MUTATIONS: readonly (readonly [number, string, Mutation])[] = [
  [2, 'delete line', (rng, lines) => lines.toSpliced(anyLine(rng, lines), 1)],
  [
    2,
    'duplicate line',
    (rng, lines) => {
      const i = anyLine(rng, lines);
      return lines.toSpliced(i, 0, lines[i] ?? '');
    },
  ],
  [
    1,
    'swap lines',
    (rng, lines) => {
      const copy = lines.slice();
      const i = anyLine(rng, lines);
      const j = anyLine(rng, lines);
      [copy[i], copy[j]] = [copy[j] ?? '', copy[i] ?? ''];
      return copy;
    },
  ],
  [
    3,
    'swap values',
    (rng, lines) => {
      const candidates = assignmentLines(lines);
      if (candidates.length < 2) return lines;
      const i = rng.pick(candidates);
      const j = rng.pick(candidates);
      const a = keyValue.exec(lines[i] ?? '');
      const b = keyValue.exec(lines[j] ?? '');
      if (a === null || b === null) return lines;
      const copy = lines.slice();
      copy[i] = `${a[1]}${a[2]} = ${b[3]}`;
      copy[j] = `${b[1]}${b[2]} = ${a[3]}`;
      return copy;
    },
  ],
  [
    4,
    'change value',
    (rng, lines) => {
      const candidates = assignmentLines(lines);
      if (candidates.length === 0) return lines;
      const i = rng.pick(candidates);
      const match = keyValue.exec(lines[i] ?? '');
      return match === null ? lines : lines.toSpliced(i, 1, `${match[1]}${match[2]} = ${rng.pick(VALUES)}`);
    },
  ],
  [
    4,
    'random key',
    (rng, lines) => lines.toSpliced(anyLine(rng, lines) + 1, 0, `${rng.pick(KEYS)} = ${rng.pick(VALUES)}`),
  ],
  [
    2,
    'rename key',
    (rng, lines) => {
      const candidates = assignmentLines(lines);
      if (candidates.length === 0) return lines;
      const i = rng.pick(candidates);
      const match = keyValue.exec(lines[i] ?? '');
      return match === null ? lines : lines.toSpliced(i, 1, `${match[1]}${rng.pick(KEYS)} = ${match[3]}`);
    },
  ],
  [2, 'random table', (rng, lines) => lines.toSpliced(anyLine(rng, lines), 0, rng.pick(TABLES))],
];

/** Byte-level damage: the file as a buggy editor or a bad copy would leave it. */
function flipBytes(rng: Rng, text: string): { text: string; how: string } {
  const bytes = Buffer.from(text);
  const count = rng.int(1, 4);
  const how = rng.pick(['byte flip', 'bit flip', 'truncate']);
  if (how === 'truncate') return { text: decoder.decode(bytes.subarray(0, rng.int(0, bytes.length))), how };
  for (let n = 0; n < count; n++) {
    const i = rng.int(0, bytes.length - 1);
    bytes[i] =
      how === 'bit flip'
        ? (bytes[i] ?? 0) ^ (1 << rng.int(0, 7))
        : rng.pick([0, 0x22, 0x27, 0x3d, 0x5b, 0x5d, 0x0a, 0x23, 0x5c, 0x7b, 0x7d, 0x2c, 0xff, rng.int(0, 255)]);
  }
  return { text: decoder.decode(bytes), how };
}

/** One to three mutations of `text`; `how` names them for the tally and for a failure message. */
export function mutateConfig(rng: Rng, text: string): { text: string; how: string } {
  if (rng.chance(0.25)) return flipBytes(rng, text);
  let lines = text.split('\n');
  const names: string[] = [];
  for (let n = rng.int(1, 3); n > 0; n--) {
    const [, name, mutation] = rng.weighted(MUTATIONS.map((entry) => [entry[0], entry] as const));
    lines = mutation(rng, lines);
    names.push(name);
  }
  return { text: lines.join('\n'), how: names.join(' + ') };
}
