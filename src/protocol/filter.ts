/**
 * Subscription filters (docs/PROTOCOL.md "Filters"): an object of conditions on a channel's validated payload,
 * all of which must hold. Compiled once per subscribe into a closure; nothing is parsed per message.
 *
 * Decisions the contract leaves open:
 * - `{}` has no conditions and matches every payload (its key is `{}`).
 * - Dot paths walk objects only, through own properties: an array, a scalar or `null` on the way makes
 *   the path missing, so `"items.0"` never reaches an array element. A key that itself contains a dot
 *   cannot be addressed. `__proto__` or `constructor` reach only a payload's own such key.
 * - lt/lte/gt/gte compare numbers numerically and strings by UTF-16 code unit order (JavaScript `<`),
 *   never across types.
 * - `{"eq": null}` matches a present `null`, not a missing path.
 */

/** How big a filter may be: a client sends it, and every notification on the channel runs it. */
export const FILTER_LIMITS = {
  /** Conditions (keys) in one filter. */
  conditions: 64,
  /** Segments in one dot path. */
  pathSegments: 16,
  /** Values in one `in`/`nin` list. */
  listValues: 256,
  /** Nesting of arrays and objects inside one compared value. */
  valueDepth: 16,
} as const;

/** A compiled filter: `match` runs per notification; `key` is the same for equal filters. */
export type CompiledFilter =
  | {
      readonly ok: true;
      readonly match: (payload: unknown) => boolean;
      /**
       * Canonical JSON text of the filter: keys sorted (recursively, by code unit), a bare value written
       * as `{"eq": value}`. Equal filters share one key, so their subscribers share one topic.
       */
      readonly key: string;
    }
  | { readonly ok: false; readonly message: string };

type Test = (value: unknown) => boolean;
type Operator = { readonly whenMissing: boolean; build(operand: unknown, where: string): Test | string };

// Each operator: what a missing path gives, and how its operand becomes a test (or an error message).
const OPERATORS: Readonly<Record<string, Operator>> = {
  eq: { whenMissing: false, build: (operand) => equalTo(operand) },
  neq: { whenMissing: true, build: (operand) => not(equalTo(operand)) },
  in: { whenMissing: false, build: (operand, where) => oneOf(operand, where, 'in') },
  nin: { whenMissing: true, build: (operand, where) => notOneOf(operand, where) },
  lt: { whenMissing: false, build: (x, where) => ordered(x, where, 'lt', (sign) => sign < 0) },
  lte: { whenMissing: false, build: (x, where) => ordered(x, where, 'lte', (sign) => sign <= 0) },
  gt: { whenMissing: false, build: (x, where) => ordered(x, where, 'gt', (sign) => sign > 0) },
  gte: { whenMissing: false, build: (x, where) => ordered(x, where, 'gte', (sign) => sign >= 0) },
};

/** Checks and compiles a client's filter. Never throws: a bad filter is a message for `bad_request`. */
export function compileFilter(filter: unknown): CompiledFilter {
  if (!isRecord(filter)) return { ok: false, message: `filter must be an object of conditions, got ${kind(filter)}` };
  const paths = Object.keys(filter);
  if (paths.length > FILTER_LIMITS.conditions) {
    return { ok: false, message: `filter has ${paths.length} conditions; at most ${FILTER_LIMITS.conditions}` };
  }
  // Sorted so the key is canonical; the conditions are independent, so their order changes nothing else.
  paths.sort();
  const tests: Test[] = [];
  const parts: string[] = [];
  for (const path of paths) {
    const where = `filter ${JSON.stringify(path)}`;
    const segments = path.split('.');
    if (segments.includes('')) return { ok: false, message: `${where}: a path needs non-empty segments between dots` };
    if (segments.length > FILTER_LIMITS.pathSegments) {
      return { ok: false, message: `${where}: at most ${FILTER_LIMITS.pathSegments} path segments` };
    }
    const condition = filter[path];
    let name = 'eq';
    let operand = condition;
    if (isRecord(condition)) {
      const keys = Object.keys(condition);
      const only = keys[0];
      if (keys.length !== 1 || only === undefined || !Object.hasOwn(OPERATORS, only)) {
        const message = `an object must be one operator (${Object.keys(OPERATORS).join(', ')}); compare with an object through {"eq": {...}}`;
        return { ok: false, message: `${where}: ${message}` };
      }
      name = only;
      operand = condition[only];
    }
    const text = canonical(operand, 0);
    if (typeof text !== 'string') return { ok: false, message: `${where}: ${text.error}` };
    const operator = OPERATORS[name]!;
    // Built from a private copy: the caller's object may change later; the compiled filter must not.
    const test = operator.build(JSON.parse(text), where);
    if (typeof test === 'string') return { ok: false, message: test };
    tests.push(atPath(segments, operator.whenMissing, test));
    parts.push(`${JSON.stringify(path)}:{${JSON.stringify(name)}:${text}}`);
  }
  return { ok: true, match: all(tests), key: `{${parts.join(',')}}` };
}

function all(tests: readonly Test[]): Test {
  if (tests.length === 1) return tests[0]!;
  return (payload) => {
    for (const test of tests) if (!test(payload)) return false;
    return true;
  };
}

function atPath(segments: readonly string[], whenMissing: boolean, test: Test): Test {
  return (payload) => {
    let value: unknown = payload;
    for (const segment of segments) {
      if (!isRecord(value) || !Object.hasOwn(value, segment)) return whenMissing;
      value = value[segment];
    }
    return test(value);
  };
}

function equalTo(operand: unknown): Test {
  if (typeof operand !== 'object' || operand === null) return (value) => value === operand;
  return (value) => deepEqual(value, operand);
}

function not(test: Test): Test {
  return (value) => !test(value);
}

function oneOf(operand: unknown, where: string, name: string): Test | string {
  if (!Array.isArray(operand)) return `${where}: "${name}" needs an array of values, got ${kind(operand)}`;
  if (operand.length > FILTER_LIMITS.listValues) {
    return `${where}: "${name}" lists ${operand.length} values; at most ${FILTER_LIMITS.listValues}`;
  }
  // Scalars go through a Set (SameValueZero keeps 1 and "1" apart); objects and arrays need deep equality.
  const scalars = new Set<unknown>();
  const compounds: unknown[] = [];
  for (const item of operand) {
    if (typeof item === 'object' && item !== null) compounds.push(item);
    else scalars.add(item);
  }
  if (compounds.length === 0) return (value) => scalars.has(value);
  return (value) => scalars.has(value) || compounds.some((item) => deepEqual(value, item));
}

function notOneOf(operand: unknown, where: string): Test | string {
  const test = oneOf(operand, where, 'nin');
  return typeof test === 'string' ? test : not(test);
}

// `holds` reads the sign of value-versus-x; a value of the other type never matches.
function ordered(x: unknown, where: string, name: string, holds: (sign: number) => boolean): Test | string {
  if (typeof x === 'number') return (value) => typeof value === 'number' && holds(value < x ? -1 : value > x ? 1 : 0);
  if (typeof x === 'string') return (value) => typeof value === 'string' && holds(value < x ? -1 : value > x ? 1 : 0);
  return `${where}: "${name}" needs a number or a string, got ${kind(x)}`;
}

// `b` is the filter's operand, whose depth is bounded, so the recursion is too, however deep `a` is.
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, index) => deepEqual(item, b[index]));
  }
  const keys = Object.keys(b);
  if (Object.keys(a).length !== keys.length) return false;
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  return keys.every((key) => Object.hasOwn(left, key) && deepEqual(left[key], right[key]));
}

// The operand's canonical JSON text, built by concatenation: assigning a "__proto__" key to a fresh
// object would re-parent it instead of adding the key.
function canonical(value: unknown, depth: number): string | { error: string } {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number')
    return Number.isFinite(value) ? JSON.stringify(value) : { error: 'numbers must be finite' };
  if (typeof value !== 'object') return { error: `${kind(value)} is not a JSON value` };
  if (depth >= FILTER_LIMITS.valueDepth) return { error: `values nest at most ${FILTER_LIMITS.valueDepth} deep` };
  const items: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      const text = canonical(item, depth + 1);
      if (typeof text !== 'string') return text;
      items.push(text);
    }
    return `[${items.join(',')}]`;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record).sort()) {
    const text = canonical(record[key], depth + 1);
    if (typeof text !== 'string') return text;
    items.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${items.join(',')}}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`;
}
