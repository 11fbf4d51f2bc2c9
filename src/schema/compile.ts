import * as v from 'valibot';
import {
  arrayWalk,
  type Check,
  describe,
  type Issue,
  isArray,
  isCount,
  isNumber,
  isObject,
  isString,
  type Json,
  type Node,
  objectWalk,
  oneOf,
  type Schema,
  setOwn,
  when,
} from './actions.ts';
import { isDate, isDateTime, isEmail, isUri, isUuid } from './formats.ts';

/*
 * Inline channel schemas: a JSON Schema (draft 2020-12) subset written in TOML, built once into a valibot
 * schema. Each schema object becomes one pipe: a type check, then keyword checks that skip values of other
 * types (JSON Schema's rule), then the object/array walk that fills defaults, then anyOf. Native valibot
 * actions are used where their semantics match exactly (number bounds, item counts, regex). String lengths
 * count code points by hand, and only when the UTF-16 length cannot decide, where valibot's code-point actions
 * walk every string in full; `format` checks live in formats.ts. Objects and arrays are walked by hand because
 * valibot's object schemas look keys up with `in` (so `toString` is always "present") and rebuild every value
 * on every run.
 */

/**
 * A problem in a schema definition, found when it is built. `path` leads to the schema object holding the
 * problem (`['properties', 'id']`, empty for the root) and `reason` names the keyword, so the message reads
 * `properties.id: unknown keyword "frobnicate"`, or just the reason at the root. Callers that nest the
 * schema inside a larger document should join their own prefix with `path` and `reason` themselves.
 */
export class SchemaError extends Error {
  override name = 'SchemaError' as const;
  readonly path: readonly (string | number)[];
  readonly keyword: string | undefined;
  readonly reason: string;

  constructor(path: readonly (string | number)[], reason: string, keyword?: string, options?: ErrorOptions) {
    super(path.length === 0 ? reason : `${path.join('.')}: ${reason}`, options);
    this.path = path;
    this.keyword = keyword;
    this.reason = reason;
  }
}

type Path = readonly (string | number)[];

const SCHEMA_URIS = new Set([
  'https://json-schema.org/draft/2020-12/schema',
  'https://json-schema.org/draft/2020-12/schema#',
]);
const KEYWORDS = new Set([
  '$schema',
  'description',
  'type',
  'enum',
  'const',
  'default',
  'anyOf',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
]);

// smol-toml builds tables with a null prototype, JSON.parse with Object.prototype; anything else (a TomlDate) is not JSON.
const isPlain = (value: unknown): value is Json =>
  isObject(value) && [Object.prototype, null].includes(Object.getPrototypeOf(value));

const TYPES: Readonly<Record<string, (value: unknown) => boolean>> = {
  string: isString,
  number: isNumber,
  integer: Number.isInteger,
  boolean: (x) => typeof x === 'boolean',
  null: (x) => x === null,
  object: isObject,
  array: isArray,
};
const FORMATS: Readonly<Record<string, (text: string) => boolean>> = {
  'date-time': isDateTime,
  date: isDate,
  email: isEmail,
  uuid: isUuid,
  uri: isUri,
};

// valibot types pipe() as fixed-length overloads; a list built at run time needs its variadic implementation.
const pipe = v.pipe as unknown as (schema: Schema, ...items: v.PipeItem<unknown, unknown, Issue>[]) => Schema;

/** A frozen copy of a TOML or JSON value, refusing what JSON cannot hold (TOML dates, inf, nan). */
function toJson(value: unknown, path: Path, keyword: string): unknown {
  if (value === null || isString(value) || isNumber(value) || typeof value === 'boolean') return value;
  if (isArray(value)) return Object.freeze(value.map((item) => toJson(item, path, keyword)));
  if (isPlain(value)) {
    const copy: Json = {};
    for (const key of Object.keys(value)) setOwn(copy, key, toJson(value[key], path, keyword));
    return Object.freeze(copy);
  }
  const what =
    value instanceof Date ? 'a TOML date or time' : typeof value === 'number' ? String(value) : `a ${typeof value}`;
  throw new SchemaError(path, `"${keyword}" must be a JSON value, not ${what}`, keyword);
}

/** Reads one keyword, throwing a SchemaError that names it when its value is not what `accept` wants. */
function read<T>(
  definition: Json,
  path: Path,
  keyword: string,
  accept: (value: unknown) => value is T,
  wanted: string,
): T | undefined {
  if (!Object.hasOwn(definition, keyword)) return undefined;
  const value = definition[keyword];
  if (!accept(value)) throw new SchemaError(path, `"${keyword}" must be ${wanted}`, keyword);
  return value;
}

const isUniqueStrings = (value: unknown): value is string[] =>
  isArray(value) && value.every(isString) && new Set(value).size === value.length;
const isTypes = (value: unknown): value is string | string[] =>
  (isString(value) && Object.hasOwn(TYPES, value)) ||
  (isUniqueStrings(value) && value.length > 0 && value.every((name) => Object.hasOwn(TYPES, name)));
const isSchemaUri = (value: unknown): value is string => isString(value) && SCHEMA_URIS.has(value);
const isFormat = (value: unknown): value is string => isString(value) && Object.hasOwn(FORMATS, value);
const isSchemaList = (value: unknown): value is unknown[] => isArray(value) && value.length > 0;

function typeCheck(names: readonly string[]): Schema {
  const tests = names.map((name) => TYPES[name] ?? (() => false));
  const [only] = tests;
  const expects = names.join(' | ');
  return v.custom<unknown>(
    tests.length === 1 && only ? only : (input) => tests.some((test) => test(input)),
    (issue) => `Invalid type: Expected ${expects} but received ${describe(issue.input)}`,
  );
}

function compile(pattern: string, path: Path): RegExp {
  try {
    return new RegExp(pattern, 'u');
  } catch (error) {
    throw new SchemaError(path, `"pattern" is not a valid regular expression: ${(error as Error).message}`, 'pattern', {
      cause: error,
    });
  }
}

/** JSON Schema lengths count code points; counting without spreading the string allocates nothing. */
function codePoints(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

function keywordChecks(definition: Json, path: Path): Check[] {
  const checks: Check[] = [];
  const count = (keyword: string) => read(definition, path, keyword, isCount, 'a non-negative integer');
  const bound = (keyword: string) => read(definition, path, keyword, isNumber, 'a finite number');
  if (Object.hasOwn(definition, 'const')) {
    const value = toJson(definition['const'], path, 'const');
    checks.push(oneOf([value], `must be equal to ${JSON.stringify(value)}`));
  }
  const options = read(definition, path, 'enum', isArray, 'a list of values')?.map((value) =>
    toJson(value, path, 'enum'),
  );
  if (options) checks.push(oneOf(options, `must be one of ${JSON.stringify(options)}`));
  const minLength = count('minLength');
  // A string has between length/2 and length code points, so counting is needed only in between.
  if (minLength !== undefined) {
    const atLeast = (text: string) =>
      text.length >= 2 * minLength || (text.length >= minLength && codePoints(text) >= minLength);
    checks.push(when(isString, v.check(atLeast, `must be at least ${minLength} characters`)));
  }
  const maxLength = count('maxLength');
  if (maxLength !== undefined) {
    const atMost = (text: string) =>
      text.length <= maxLength || (text.length <= 2 * maxLength && codePoints(text) <= maxLength);
    checks.push(when(isString, v.check(atMost, `must be at most ${maxLength} characters`)));
  }
  const pattern = read(definition, path, 'pattern', isString, 'a string');
  if (pattern !== undefined)
    checks.push(when(isString, v.regex(compile(pattern, path), `must match the pattern ${pattern}`)));
  const format = read(definition, path, 'format', isFormat, `one of ${Object.keys(FORMATS).join(', ')}`);
  if (format !== undefined)
    checks.push(when(isString, v.check(FORMATS[format] ?? (() => false), `must be a valid ${format}`)));
  const minimum = bound('minimum');
  if (minimum !== undefined) checks.push(when(isNumber, v.minValue(minimum, `must be at least ${minimum}`)));
  const maximum = bound('maximum');
  if (maximum !== undefined) checks.push(when(isNumber, v.maxValue(maximum, `must be at most ${maximum}`)));
  const above = bound('exclusiveMinimum');
  if (above !== undefined) checks.push(when(isNumber, v.gtValue(above, `must be greater than ${above}`)));
  const below = bound('exclusiveMaximum');
  if (below !== undefined) checks.push(when(isNumber, v.ltValue(below, `must be less than ${below}`)));
  const minItems = count('minItems');
  if (minItems !== undefined) checks.push(when(isArray, v.minLength(minItems, `must have at least ${minItems} items`)));
  const maxItems = count('maxItems');
  if (maxItems !== undefined) checks.push(when(isArray, v.maxLength(maxItems, `must have at most ${maxItems} items`)));
  return checks;
}

function buildNode(definition: unknown, path: Path, refusal = 'no value is allowed here'): Node {
  if (definition === true) return { schema: v.unknown(), fill: undefined };
  if (definition === false) return { schema: v.never(refusal), fill: undefined };
  if (!isPlain(definition)) throw new SchemaError(path, 'a schema must be a table or a boolean');
  for (const key of Object.keys(definition)) {
    if (!KEYWORDS.has(key)) throw new SchemaError(path, `unknown keyword "${key}"`, key);
  }
  read(definition, path, '$schema', isSchemaUri, `"${[...SCHEMA_URIS][0]}", the only dialect supported`);
  read(definition, path, 'description', isString, 'a string');
  const types = read(definition, path, 'type', isTypes, `one of ${Object.keys(TYPES).join(', ')}, or a list of them`);
  const steps: v.PipeItem<unknown, unknown, Issue>[] = keywordChecks(definition, path);

  const properties = new Map<string, Node>();
  const table = read(definition, path, 'properties', isPlain, 'a table of schemas') ?? {};
  for (const key of Object.keys(table)) properties.set(key, buildNode(table[key], [...path, 'properties', key]));
  // Absent and `true` both keep unknown keys as they are, so neither needs a walk.
  const rest = definition['additionalProperties'];
  const additional =
    Object.hasOwn(definition, 'additionalProperties') && rest !== true
      ? buildNode(rest, [...path, 'additionalProperties'], 'unexpected property')
      : undefined;
  const required = read(definition, path, 'required', isUniqueStrings, 'a list of unique strings') ?? [];
  if (required.length > 0 || properties.size > 0 || additional)
    steps.push(objectWalk(required, properties, additional));
  if (Object.hasOwn(definition, 'items') && definition['items'] !== true) {
    steps.push(arrayWalk(buildNode(definition['items'], [...path, 'items'])));
  }
  const anyOf = read(definition, path, 'anyOf', isSchemaList, 'a non-empty list of schemas');
  if (anyOf) {
    const options = anyOf.map((option, index) => buildNode(option, [...path, 'anyOf', index]).schema);
    steps.push(v.union(options, 'must match at least one schema in anyOf'));
  }

  const start = types === undefined ? v.unknown() : typeCheck(isString(types) ? [types] : types);
  const schema = steps.length === 0 ? start : pipe(start, ...steps);
  if (!Object.hasOwn(definition, 'default')) return { schema, fill: undefined };
  const result = v.safeParse(schema, toJson(definition['default'], path, 'default'));
  if (!result.success) {
    const [issue] = result.issues;
    const where = v.getDotPath(issue);
    const reason = `"default" does not match its own schema: ${where ? `${where}: ` : ''}${issue.message}`;
    throw new SchemaError(path, reason, 'default');
  }
  // Frozen because every notification that lacks the property shares this one value.
  return { schema, fill: { value: toJson(result.output, path, 'default') } };
}

/**
 * Builds an inline channel schema (a JSON Schema draft 2020-12 subset, parsed from TOML or JSON) into a
 * valibot schema, once, at startup; run it with `v.safeParse`, which never throws on any JSON value and
 * whose output has `properties` defaults filled in. Throws SchemaError for an unknown keyword, a keyword
 * value of the wrong type, a bad `pattern`, an unknown `format`, or a `default` its own schema rejects.
 */
export function buildInlineSchema(definition: unknown): v.GenericSchema<unknown, unknown> {
  return buildNode(definition, []).schema;
}
