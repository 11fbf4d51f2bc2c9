import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { parse as parseToml } from 'smol-toml';
import * as v from 'valibot';
import { buildInlineSchema, SchemaError } from '../src/schema/compile.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

/** Every issue of one parse as `dot.path: message` (`(root)` for the value itself). */
function problems(definition: unknown, input: unknown): string[] {
  const result = v.safeParse(buildInlineSchema(definition), input);
  return (result.issues ?? []).map((issue) => `${v.getDotPath(issue) ?? '(root)'}: ${issue.message}`);
}

function output(definition: unknown, input: unknown): unknown {
  const result = v.safeParse(buildInlineSchema(definition), input);
  if (!result.success) throw new Error(`unexpected issues: ${problems(definition, input).join('; ')}`);
  return result.output;
}

function refusal(definition: unknown): SchemaError {
  try {
    buildInlineSchema(definition);
  } catch (error) {
    if (error instanceof SchemaError) return error;
    throw error;
  }
  throw new Error('the schema was built, but it should have been refused');
}

describe('validation', () => {
  test.each([
    ['a type accepts its own JSON type', { type: 'string' }, 'x', true],
    ['a type refuses other JSON types', { type: 'string' }, 1, false],
    ['integer accepts 1.0', { type: 'integer' }, 1.0, true],
    ['integer refuses 1.5', { type: 'integer' }, 1.5, false],
    ['a type list accepts any listed type', { type: ['integer', 'null'] }, null, true],
    ['a type list refuses unlisted types', { type: ['integer', 'null'] }, 'x', false],
    ['object refuses arrays', { type: 'object' }, [], false],
    ['minLength counts code points, not UTF-16 units', { minLength: 2 }, '💩', false],
    ['maxLength counts code points, not UTF-16 units', { maxLength: 1 }, '💩', true],
    ['string keywords ignore numbers', { minLength: 3, pattern: '^a' }, 12, true],
    ['pattern searches anywhere in the string', { pattern: 'b+' }, 'abbc', true],
    ['pattern uses unicode mode', { pattern: '^\\p{Letter}+$' }, 'ÉtÉ', true],
    ['minimum is inclusive', { minimum: 3 }, 3, true],
    ['exclusiveMinimum is exclusive', { exclusiveMinimum: 3 }, 3, false],
    ['maximum is inclusive', { maximum: 3 }, 3, true],
    ['exclusiveMaximum is exclusive', { exclusiveMaximum: 3 }, 3, false],
    ['number keywords ignore strings', { minimum: 3 }, 'a', true],
    ['minItems counts items', { minItems: 2 }, [1], false],
    ['maxItems counts items', { maxItems: 1 }, [1, 2], false],
    ['const compares objects regardless of key order', { const: { a: 1, b: [1, 2] } }, { b: [1, 2], a: 1 }, true],
    ['const compares arrays in order', { const: [1, 2] }, [2, 1], false],
    ['const treats false and 0 as different', { const: false }, 0, false],
    ['enum treats 1 and 1.0 as equal', { enum: [1.0, 'a'] }, 1, true],
    ['enum compares nested values deeply', { enum: [{ a: [null] }] }, { a: [null] }, true],
    ['required applies only to objects', { required: ['id'] }, 'not an object', true],
    ['required accepts a key missing from properties', { required: ['id'], properties: {} }, { id: 1 }, true],
    [
      'additionalProperties false refuses other keys',
      { properties: { a: {} }, additionalProperties: false },
      { b: 1 },
      false,
    ],
    [
      'additionalProperties as a schema checks other keys',
      { additionalProperties: { type: 'number' } },
      { b: 'x' },
      false,
    ],
    ['items checks every item', { items: { type: 'integer' } }, [1, 'x'], false],
    ['items false accepts only empty arrays', { items: false }, [], true],
    ['anyOf accepts a value matching one branch', { anyOf: [{ type: 'integer' }, { minLength: 2 }] }, 'ab', true],
    ['anyOf refuses a value matching no branch', { anyOf: [{ type: 'integer' }, { minLength: 2 }] }, 'a', false],
    ['format date-time checks RFC 3339', { format: 'date-time' }, '2024-02-30T00:00:00Z', false],
    ['format date checks RFC 3339 full-date', { format: 'date' }, '2024-02-29', true],
    ['format email checks RFC 5321', { format: 'email' }, '"a b"@[IPv6:::1]', true],
    ['format uuid checks RFC 9562', { format: 'uuid' }, '00000000-0000-0000-0000-000000000000', true],
    ['format uri checks RFC 3986', { format: 'uri' }, '/relative', false],
    ['format ignores non-strings', { format: 'email' }, 42, true],
    [
      'description and $schema are annotations',
      { description: 'x', $schema: 'https://json-schema.org/draft/2020-12/schema' },
      1,
      true,
    ],
  ])('%s', (_, definition, input, valid) => {
    expect(v.safeParse(buildInlineSchema(definition), input).success).toBe(valid);
  });

  test('property names from Object.prototype are ordinary keys', () => {
    // JSON.parse, because a `__proto__` key in an object literal sets the prototype instead.
    const definition = JSON.parse(
      '{"properties":{"toString":{"type":"number"},"__proto__":{"type":"number"}},"required":["constructor"]}',
    );
    expect(problems(definition, {})).toEqual(['constructor: required property is missing']);
    expect(problems(definition, JSON.parse('{"constructor":1,"__proto__":"x"}'))).toEqual([
      '__proto__: Invalid type: Expected number but received "x"',
    ]);
  });

  test('issues carry the path to the failing value and readable messages', () => {
    const definition = {
      type: 'array',
      items: { type: 'object', properties: { id: { type: 'integer' }, name: { minLength: 3 } } },
    };
    expect(problems(definition, [{ id: 1 }, { id: 'x', name: 'ab' }])).toEqual([
      '1.id: Invalid type: Expected integer but received "x"',
      '1.name: must be at least 3 characters',
    ]);
  });

  test('reports every problem in an object, not only the first', () => {
    const definition = { properties: { a: { type: 'string' } }, required: ['b'], additionalProperties: false };
    expect(problems(definition, { a: 1, c: 2 })).toEqual([
      'b: required property is missing',
      'a: Invalid type: Expected string but received 1',
      'c: unexpected property',
    ]);
  });

  test('does not coerce or trim: the output is the input itself when there is nothing to fill', () => {
    const input = { id: ' 7 ', tags: ['a'] };
    expect(output({ properties: { id: { type: 'string' }, tags: { items: { type: 'string' } } } }, input)).toBe(input);
    expect(problems({ type: 'integer' }, '7')).toEqual(['(root): Invalid type: Expected integer but received "7"']);
  });
});

describe('defaults', () => {
  test('fills a missing property with its default', () => {
    expect(output({ type: 'object', properties: { n: { type: 'integer', default: 3 } } }, {})).toEqual({ n: 3 });
  });

  test('fills defaults inside nested objects and array items without touching the input', () => {
    const definition = {
      items: { properties: { qty: { default: 1 }, meta: { default: {}, properties: { v: { default: 2 } } } } },
    };
    const input = [{ qty: 5 }, {}];
    expect(output(definition, input)).toEqual([
      { qty: 5, meta: { v: 2 } },
      { qty: 1, meta: { v: 2 } },
    ]);
    expect(input).toEqual([{ qty: 5 }, {}]);
  });

  test('keeps a present value, even null, instead of the default', () => {
    expect(output({ properties: { n: { default: 3 } } }, { n: null })).toEqual({ n: null });
  });

  test('checks required against the input, before defaults are filled', () => {
    expect(problems({ properties: { n: { default: 3 } }, required: ['n'] }, {})).toEqual([
      'n: required property is missing',
    ]);
  });

  test('fills a __proto__ default as an own key that survives JSON.stringify', () => {
    const filled = output(JSON.parse('{"properties":{"__proto__":{"default":1}}}'), {});
    expect(JSON.stringify(filled)).toBe('{"__proto__":1}');
    expect(Object.getPrototypeOf(filled)).toBe(Object.prototype);
  });
});

describe('building', () => {
  test.each([
    [
      { properties: { id: { frobnicate: 1 } } },
      'properties.id: unknown keyword "frobnicate"',
      'frobnicate',
      ['properties', 'id'],
    ],
    [{ $ref: '#/x' }, 'unknown keyword "$ref"', '$ref', []],
    [
      { properties: { name: { minLength: '3' } } },
      'properties.name: "minLength" must be a non-negative integer',
      'minLength',
      ['properties', 'name'],
    ],
    [{ maxItems: -1 }, '"maxItems" must be a non-negative integer', 'maxItems', []],
    [{ minimum: '1' }, '"minimum" must be a finite number', 'minimum', []],
    [
      { type: 'float' },
      '"type" must be one of string, number, integer, boolean, null, object, array, or a list of them',
      'type',
      [],
    ],
    [
      { type: ['string', 'string'] },
      '"type" must be one of string, number, integer, boolean, null, object, array, or a list of them',
      'type',
      [],
    ],
    [
      { items: { format: 'ipv4' } },
      'items: "format" must be one of date-time, date, email, uuid, uri',
      'format',
      ['items'],
    ],
    [
      { anyOf: [{}, { pattern: '(' }] },
      'anyOf.1: "pattern" is not a valid regular expression: ',
      'pattern',
      ['anyOf', 1],
    ],
    [{ anyOf: [] }, '"anyOf" must be a non-empty list of schemas', 'anyOf', []],
    [{ required: 'id' }, '"required" must be a list of unique strings', 'required', []],
    [
      { properties: { a: { type: 'integer', default: 'x' } } },
      'properties.a: "default" does not match its own schema: Invalid type: Expected integer but received "x"',
      'default',
      ['properties', 'a'],
    ],
    [
      { default: { a: 'x' }, properties: { a: { type: 'integer' } } },
      '"default" does not match its own schema: a: Invalid type',
      'default',
      [],
    ],
    [
      { $schema: 'http://json-schema.org/draft-07/schema#' },
      '"$schema" must be "https://json-schema.org/draft/2020-12/schema"',
      '$schema',
      [],
    ],
    [{ properties: { a: 3 } }, 'properties.a: a schema must be a table or a boolean', undefined, ['properties', 'a']],
    [{ const: Number.POSITIVE_INFINITY }, '"const" must be a JSON value, not Infinity', 'const', []],
  ])('refuses %j', (definition, message, keyword, path) => {
    const error = refusal(definition);
    expect(error.name).toBe('SchemaError');
    expect(error.message).toStartWith(message);
    expect(error.keyword).toBe(keyword);
    expect(error.path).toEqual(path);
  });

  test('builds a schema parsed from TOML, whose tables have no prototype', () => {
    const toml = 'type = "object"\nrequired = ["id"]\n[properties.id]\ntype = "integer"\nminimum = 1\n';
    const schema = buildInlineSchema(parseToml(toml));
    expect(v.safeParse(schema, { id: 1 }).success).toBe(true);
    expect(v.safeParse(schema, { id: 0 }).success).toBe(false);
  });

  test.each(['const = 1979-05-27T07:32:00Z', 'enum = [1979-05-27]', 'default = 07:32:00', 'default = nan'])(
    'refuses a TOML value JSON cannot hold: %s',
    (line) => {
      expect(refusal(parseToml(line)).message).toMatch(/^"(const|enum|default)" must be a JSON value, not /);
    },
  );
});

describe('hostile input', () => {
  const schema = buildInlineSchema({
    type: 'object',
    properties: { a: { items: { minLength: 1 } }, s: { pattern: '^a+$' } },
  });

  test('does not throw on 10,000 nested arrays', () => {
    const deep = JSON.parse(`${'['.repeat(10_000)}${']'.repeat(10_000)}`);
    expect(v.safeParse(schema, { a: deep }).success).toBe(true);
    expect(v.safeParse(buildInlineSchema({ const: [[[1]]] }), deep).success).toBe(false);
  });

  test('keeps messages about a huge string short', () => {
    const huge = 'b'.repeat(5_000_000);
    const [message] = problems({ type: 'integer' }, huge);
    expect(message?.length).toBeLessThan(200);
    expect(v.safeParse(schema, { s: huge }).success).toBe(false);
  });

  test.each([undefined, Number.NaN, () => 1, Symbol('x'), 10n, new Date(0)])(
    'does not throw on the non-JSON value %p',
    (input) => {
      expect(() => v.safeParse(schema, input)).not.toThrow();
    },
  );
});

describe('string lengths count code points at every boundary of the fast path', () => {
  const astral = '😀'; // two UTF-16 units, one code point
  test.each([
    [{ maxLength: 2 }, `${astral}${astral}`, true],
    [{ maxLength: 2 }, `${astral}${astral}${astral}`, false],
    [{ maxLength: 2 }, `a${astral}`, true],
    [{ maxLength: 2 }, 'abc', false],
    [{ maxLength: 3 }, `${astral}ab`, true],
    [{ minLength: 2 }, astral, false],
    [{ minLength: 2 }, `${astral}${astral}`, true],
    [{ minLength: 2 }, `${astral}a`, true],
    [{ minLength: 3 }, `${astral}${astral}`, false],
    [{ minLength: 2 }, 'ab', true],
    [{ minLength: 1 }, '\uD800', true],
    [{ maxLength: 1 }, '\uD800\uD800', false],
  ])('%j on %j is %p', (keywords, text, valid) => {
    expect(v.safeParse(buildInlineSchema({ type: 'string', ...keywords }), text).success).toBe(valid);
  });
});
