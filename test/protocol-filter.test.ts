import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { compileFilter, FILTER_LIMITS } from '../src/protocol/filter.ts';
import { randomJson } from './fuzz/payloads.ts';
import { rngFor, SEED, scaled } from './fuzz/random.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

/** Compiles a filter that must be valid and returns its match function. */
function matcher(filter: unknown): (payload: unknown) => boolean {
  const compiled = compileFilter(filter);
  if (!compiled.ok) throw new Error(`expected a valid filter: ${compiled.message}`);
  return compiled.match;
}

/** The message of a filter that must be refused. */
function refusal(filter: unknown): string {
  const compiled = compileFilter(filter);
  if (compiled.ok) throw new Error(`expected ${JSON.stringify(filter)} to be refused`);
  return compiled.message;
}

const order = {
  status: 'paid',
  total: 120,
  tags: ['a', 'b'],
  customer: { id: 7, name: 'Zoë', address: { city: 'Oslo' } },
  note: null,
  items: [{ sku: 'x' }],
};

describe('filters match payloads (no database)', () => {
  test.each<[string, Record<string, unknown>, boolean]>([
    ['a bare scalar is equality', { status: 'paid' }, true],
    ['a bare scalar that differs', { status: 'new' }, false],
    ['a bare array is deep equality', { tags: ['a', 'b'] }, true],
    ['a bare array in another order', { tags: ['b', 'a'] }, false],
    ['a bare null matches a present null', { note: null }, true],
    ['eq', { total: { eq: 120 } }, true],
    ['eq does not convert types', { total: { eq: '120' } }, false],
    ['neq', { status: { neq: 'new' } }, true],
    ['neq on an equal value', { status: { neq: 'paid' } }, false],
    ['in', { status: { in: ['new', 'paid'] } }, true],
    ['in without the value', { status: { in: ['new'] } }, false],
    ['in keeps 120 and "120" apart', { total: { in: ['120'] } }, false],
    ['in with an array member', { tags: { in: [['a', 'b']] } }, true],
    ['in with an empty list', { status: { in: [] } }, false],
    ['nin', { status: { nin: ['new'] } }, true],
    ['nin with the value', { status: { nin: ['paid', 'new'] } }, false],
    ['nin with an empty list', { status: { nin: [] } }, true],
    ['lt', { total: { lt: 121 } }, true],
    ['lt at the value', { total: { lt: 120 } }, false],
    ['lte at the value', { total: { lte: 120 } }, true],
    ['gt', { total: { gt: 119.5 } }, true],
    ['gt at the value', { total: { gt: 120 } }, false],
    ['gte at the value', { total: { gte: 120 } }, true],
    ['gt on strings compares code units', { status: { gt: 'Zzz' } }, true],
    ['lt on strings', { status: { lt: 'pair' } }, true],
    ['lt with a number against a string', { status: { lt: 1000 } }, false],
    ['gt with a string against a number', { total: { gt: '1' } }, false],
    ['lt with a number against null', { note: { lt: 1 } }, false],
    ['a dot path', { 'customer.id': 7 }, true],
    ['a deeper dot path', { 'customer.address.city': { in: ['Oslo', 'Rome'] } }, true],
    ['a non-ASCII value through a path', { 'customer.name': 'Zoë' }, true],
    [
      'eq on an object in another key order',
      { customer: { eq: { address: { city: 'Oslo' }, name: 'Zoë', id: 7 } } },
      true,
    ],
    ['eq on an object with a key fewer', { customer: { eq: { id: 7, name: 'Zoë' } } }, false],
    [
      'eq on an object with a key more',
      { customer: { eq: { id: 7, name: 'Zoë', address: { city: 'Oslo' }, x: 1 } } },
      false,
    ],
    ['neq on an object', { 'customer.address': { neq: { city: 'Rome' } } }, true],
    ['in on objects, any key order', { 'customer.address': { in: [{ city: 'Rome' }, { city: 'Oslo' }] } }, true],
    ['eq on an array against an object', { tags: { eq: { 0: 'a', 1: 'b' } } }, false],
    ['all conditions hold', { status: 'paid', 'customer.id': { gte: 7 }, total: { lt: 200 } }, true],
    ['one condition fails', { status: 'paid', 'customer.id': { gt: 7 } }, false],
  ])('%s', (_, filter, expected) => {
    expect(matcher(filter)(order)).toBe(expected);
  });

  test.each<[string, Record<string, unknown>, boolean]>([
    ['eq does not match', { missing: 1 }, false],
    ['eq null does not match', { missing: null }, false],
    ['neq matches', { missing: { neq: 1 } }, true],
    ['in does not match, even with null listed', { missing: { in: [1, null] } }, false],
    ['nin matches', { missing: { nin: [1] } }, true],
    ['lt does not match', { missing: { lt: 1 } }, false],
    ['gte does not match', { missing: { gte: '' } }, false],
    ['a path past a string is missing', { 'status.length': 4 }, false],
    ['a path past null is missing (neq matches)', { 'note.x': { neq: 1 } }, true],
    ['a numeric segment does not index an array', { 'items.0.sku': 'x' }, false],
    ['a path into an array is missing (neq matches)', { 'tags.0': { neq: 'a' } }, true],
    ['an array has no length property to a path', { 'tags.length': 2 }, false],
  ])('on a missing path, %s', (_, filter, expected) => {
    expect(matcher(filter)(order)).toBe(expected);
  });

  test.each([
    ['__proto__', '{"__proto__":{"neq":1}}'],
    ['__proto__ with nin', '{"__proto__":{"nin":[{}]}}'],
    ['constructor', '{"constructor":{"neq":1}}'],
    ['toString', '{"toString":{"neq":1}}'],
    ['constructor.name', '{"constructor.name":{"neq":"Object"}}'],
    ['hasOwnProperty', '{"hasOwnProperty":{"neq":1}}'],
  ])('a path through %s never reaches the prototype (it is missing, so neq matches)', (_, filter) => {
    const compiled = compileFilter(JSON.parse(filter));
    expect(compiled).toMatchObject({ ok: true });
    expect(compiled.ok && compiled.key).not.toBe('{}');
    expect(compiled.ok && compiled.match({ a: 1 })).toBe(true);
  });

  test('a payload with its own __proto__ key is matched on that key', () => {
    const payload = JSON.parse('{"__proto__":{"admin":true}}');
    expect(matcher(JSON.parse('{"__proto__.admin":true}'))(payload)).toBe(true);
    expect(matcher(JSON.parse('{"__proto__":{"eq":{"admin":true}}}'))(payload)).toBe(true);
  });

  test('a payload that is not an object has every path missing', () => {
    const match = matcher({ a: { nin: [1] }, b: { neq: 2 } });
    for (const payload of [null, 1, 'a', [1], true]) expect(match(payload)).toBe(true);
    for (const payload of [null, 1, 'a', [1], true]) expect(matcher({ a: 1 })(payload)).toBe(false);
  });

  test('the empty filter matches every payload', () => {
    const match = matcher({});
    for (const payload of [null, 0, '', [], {}, order]) expect(match(payload)).toBe(true);
  });

  test('0 and -0 are equal, as JSON has one zero', () => {
    expect(matcher({ n: 0 })({ n: -0 })).toBe(true);
    expect(matcher({ n: { in: [-0] } })({ n: 0 })).toBe(true);
  });

  test('the compiled match does not read the filter object again', () => {
    const filter = { status: { in: ['paid'] }, customer: { eq: { id: 7, name: 'Zoë', address: { city: 'Oslo' } } } };
    const match = matcher(filter);
    filter.status.in[0] = 'new';
    filter.customer.eq.address.city = 'Rome';
    expect(match(order)).toBe(true);
  });
});

describe('filter keys (no database)', () => {
  test('equal filters written in another key order share one key', () => {
    const a = compileFilter(JSON.parse('{"b":{"eq":{"y":1,"x":[{"q":1,"p":2}]}},"a":1}'));
    const b = compileFilter(JSON.parse('{"a":1,"b":{"eq":{"x":[{"p":2,"q":1}],"y":1}}}'));
    expect(a.ok && b.ok && a.key === b.key).toBe(true);
    expect(a).toMatchObject({ key: '{"a":{"eq":1},"b":{"eq":{"x":[{"p":2,"q":1}],"y":1}}}' });
  });

  test('a bare value and its eq form share one key, as do 1 and 1.0', () => {
    expect(compileFilter(JSON.parse('{"a":1.0}'))).toMatchObject({ key: '{"a":{"eq":1}}' });
    expect(compileFilter({ a: { eq: 1 } })).toMatchObject({ key: '{"a":{"eq":1}}' });
  });

  test.each([
    [{ a: 1 }, { a: '1' }],
    [{ a: [1, 2] }, { a: [2, 1] }],
    [{ a: { in: [1] } }, { a: { nin: [1] } }],
    [{ 'a.b': 1 }, { a: { eq: { b: 1 } } }],
  ])('different filters %j and %j have different keys', (left, right) => {
    const a = compileFilter(left);
    const b = compileFilter(right);
    expect(a.ok && b.ok && a.key !== b.key).toBe(true);
  });

  test('the key of the empty filter is {}', () => {
    expect(compileFilter({})).toMatchObject({ ok: true, key: '{}' });
  });

  test('a __proto__ key stays a key in the canonical text', () => {
    expect(compileFilter(JSON.parse('{"a":{"eq":{"__proto__":1}}}'))).toMatchObject({
      key: '{"a":{"eq":{"__proto__":1}}}',
    });
  });

  test('keys are JSON that reads back to an equivalent filter', () => {
    const compiled = compileFilter({ 'x.y': { in: ['a', 2, null, { k: [true] }] }, z: { lt: 'm' } });
    if (!compiled.ok) throw new Error(compiled.message);
    expect(compileFilter(JSON.parse(compiled.key))).toMatchObject({ key: compiled.key });
  });
});

describe('bad filters are refused with a message (no database)', () => {
  const deep = (depth: number): unknown => (depth === 0 ? 1 : [deep(depth - 1)]);
  test.each<[string, unknown, string]>([
    ['null', null, 'filter must be an object of conditions, got null'],
    ['an array', [{ a: 1 }], 'filter must be an object of conditions, got an array'],
    ['a string', 'status=paid', 'filter must be an object of conditions, got a string'],
    ['a number', 1, 'filter must be an object of conditions, got a number'],
    ['an object that is no operator', { a: { b: 1 } }, 'filter "a": an object must be one operator'],
    ['an empty object', { a: {} }, 'filter "a": an object must be one operator'],
    ['two operators', { a: { gt: 1, lt: 5 } }, 'filter "a": an object must be one operator'],
    ['an unknown operator', { a: { like: 'x%' } }, 'filter "a": an object must be one operator'],
    ['an operator of the wrong case', { a: { EQ: 1 } }, 'filter "a": an object must be one operator'],
    ['a prototype name as operator', { a: { constructor: 1 } }, 'filter "a": an object must be one operator'],
    ['in with a scalar', { a: { in: 1 } }, 'filter "a": "in" needs an array of values, got a number'],
    ['nin with an object', { a: { nin: { x: 1 } } }, 'filter "a": "nin" needs an array of values, got an object'],
    ['lt with null', { a: { lt: null } }, 'filter "a": "lt" needs a number or a string, got null'],
    ['lte with a boolean', { a: { lte: true } }, 'filter "a": "lte" needs a number or a string, got a boolean'],
    ['gt with an array', { a: { gt: [1] } }, 'filter "a": "gt" needs a number or a string, got an array'],
    ['gte with an object', { a: { gte: { n: 1 } } }, 'filter "a": "gte" needs a number or a string, got an object'],
    ['an empty path', { '': 1 }, 'filter "": a path needs non-empty segments between dots'],
    ['a path with an empty segment', { 'a..b': 1 }, 'filter "a..b": a path needs non-empty segments between dots'],
    ['a path ending in a dot', { 'a.': 1 }, 'filter "a.": a path needs non-empty segments between dots'],
    ['a path starting with a dot', { '.a': 1 }, 'filter ".a": a path needs non-empty segments between dots'],
    [
      'a path too deep',
      { [Array.from({ length: FILTER_LIMITS.pathSegments + 1 }, () => 'a').join('.')]: 1 },
      `at most ${FILTER_LIMITS.pathSegments} path segments`,
    ],
    [
      'too many conditions',
      Object.fromEntries(Array.from({ length: FILTER_LIMITS.conditions + 1 }, (_, i) => [`k${i}`, i])),
      `filter has ${FILTER_LIMITS.conditions + 1} conditions; at most ${FILTER_LIMITS.conditions}`,
    ],
    [
      'an in list too long',
      { a: { in: Array.from({ length: FILTER_LIMITS.listValues + 1 }, (_, i) => i) } },
      `"in" lists ${FILTER_LIMITS.listValues + 1} values; at most ${FILTER_LIMITS.listValues}`,
    ],
    [
      'a value nested too deep',
      { a: deep(FILTER_LIMITS.valueDepth + 1) },
      `values nest at most ${FILTER_LIMITS.valueDepth} deep`,
    ],
    ['a value nested 10,000 deep', { a: { eq: deep(10_000) } }, `values nest at most ${FILTER_LIMITS.valueDepth} deep`],
    ['an infinite number', { a: { lt: Number.POSITIVE_INFINITY } }, 'filter "a": numbers must be finite'],
    ['a value that is not JSON', { a: { eq: undefined } }, 'filter "a": undefined is not a JSON value'],
  ])('%s', (_, filter, message) => {
    expect(refusal(filter)).toContain(message);
  });

  test('the limits themselves are allowed', () => {
    const deep = (depth: number): unknown => (depth === 0 ? 1 : [deep(depth - 1)]);
    const conditions = Object.fromEntries(Array.from({ length: FILTER_LIMITS.conditions }, (_, i) => [`k${i}`, i]));
    expect(compileFilter(conditions).ok).toBe(true);
    expect(compileFilter({ [Array(FILTER_LIMITS.pathSegments).fill('a').join('.')]: 1 }).ok).toBe(true);
    expect(compileFilter({ a: { in: Array.from({ length: FILTER_LIMITS.listValues }, (_, i) => i) } }).ok).toBe(true);
    expect(compileFilter({ a: deep(FILTER_LIMITS.valueDepth) }).ok).toBe(true);
  });

  test(`never throws on random JSON as a filter or as a payload (seed ${SEED})`, () => {
    const rng = rngFor('protocol-filter');
    const operators = ['eq', 'neq', 'in', 'nin', 'lt', 'lte', 'gt', 'gte', 'like'];
    let compiled = 0;
    for (let i = 0; i < scaled(2000); i++) {
      const filter: Record<string, unknown> = {};
      for (let n = rng.int(0, 3); n > 0; n--) {
        const path = rng.pick(['id', 'status', 'meta.v', 'tags', 'a.b.c', '__proto__', 'x..y']);
        filter[path] = rng.chance(0.6) ? { [rng.pick(operators)]: randomJson(rng, 2) } : randomJson(rng, 2);
      }
      const result = compileFilter(rng.chance(0.1) ? randomJson(rng) : filter);
      if (!result.ok) continue;
      compiled++;
      for (let k = 0; k < 5; k++) expect(typeof result.match(randomJson(rng))).toBe('boolean');
    }
    expect(compiled).toBeGreaterThan(0);
  });
});
