import * as v from 'valibot';
import { isDate, isDateTime, isEmail, isUri, isUuid } from './formats.ts';

/*
 * Inline channel schemas: a JSON Schema (draft 2020-12) subset written in TOML, built once into a valibot
 * schema. Each schema object becomes one pipe: a type check, then keyword checks that skip values of other
 * types (JSON Schema's rule), then the object/array walk that fills defaults, then anyOf. Native valibot
 * actions are used where their semantics match exactly (code-point lengths, number bounds, regex, uuid);
 * objects and arrays are walked by hand because valibot's object schemas look keys up with `in` (so
 * `toString` is always "present") and rebuild every value on every run.
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
type Json = Record<string, unknown>;
type Issue = v.BaseIssue<unknown>;
type Schema = v.GenericSchema<unknown, unknown>;
type Check = v.BaseValidation<unknown, unknown, Issue>;
type Walk = v.BaseTransformation<unknown, unknown, Issue>;
/** A built schema object plus the default its parent fills in when the property is missing. */
interface Node {
  readonly schema: Schema;
  readonly fill: { readonly value: unknown } | undefined;
}

const SCHEMA_URIS = new Set(['https://json-schema.org/draft/2020-12/schema', 'https://json-schema.org/draft/2020-12/schema#']);
const KEYWORDS = new Set(['$schema', 'description', 'type', 'enum', 'const', 'default', 'anyOf', 'properties',
  'required', 'additionalProperties', 'items', 'minItems', 'maxItems', 'minLength', 'maxLength', 'pattern',
  'format', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']);

const isString = (value: unknown): value is string => typeof value === 'string';
const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const isArray = (value: unknown): value is unknown[] => Array.isArray(value);
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;
// smol-toml builds tables with a null prototype, JSON.parse with Object.prototype; anything else (a TomlDate) is not JSON.
const isPlain = (value: unknown): value is Json =>
  isObject(value) && [Object.prototype, null].includes(Object.getPrototypeOf(value));

const TYPES: Readonly<Record<string, (value: unknown) => boolean>> = {
  string: isString, number: isNumber, integer: Number.isInteger, boolean: (x) => typeof x === 'boolean',
  null: (x) => x === null, object: isObject, array: isArray,
};
const FORMATS: Readonly<Record<string, (text: string) => boolean>> = {
  'date-time': isDateTime, date: isDate, email: isEmail, uuid: isUuid, uri: isUri,
};

// valibot types pipe() as fixed-length overloads; a list built at run time needs its variadic implementation.
const pipe = v.pipe as unknown as (schema: Schema, ...items: v.PipeItem<unknown, unknown, Issue>[]) => Schema;

/** `__proto__` is an accessor on Object.prototype: assigning it would re-parent the object, not add a key. */
function setOwn(target: Json, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}

function copyObject(input: Json): Json {
  const output: Json = {};
  for (const key of Object.keys(input)) setOwn(output, key, input[key]);
  return output;
}

/** JSON equality: numbers by value (1 = 1.0), arrays in order, objects regardless of key order. */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!isArray(a) && !isObject(a)) return false;
  if (isArray(a)) return isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  if (!isObject(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
}

/** A frozen copy of a TOML or JSON value, refusing what JSON cannot hold (TOML dates, inf, nan). */
function toJson(value: unknown, path: Path, keyword: string): unknown {
  if (value === null || isString(value) || isNumber(value) || typeof value === 'boolean') return value;
  if (isArray(value)) return Object.freeze(value.map((item) => toJson(item, path, keyword)));
  if (isPlain(value)) {
    const copy: Json = {};
    for (const key of Object.keys(value)) setOwn(copy, key, toJson(value[key], path, keyword));
    return Object.freeze(copy);
  }
  const what = value instanceof Date ? 'a TOML date or time' : typeof value === 'number' ? String(value) : `a ${typeof value}`;
  throw new SchemaError(path, `"${keyword}" must be a JSON value, not ${what}`, keyword);
}

/** How an input shows in a message: strings quoted like valibot does, but cut short so a huge one stays readable. */
function describe(input: unknown): string {
  if (!isString(input)) return v._stringify(input);
  return input.length <= 60 ? `"${input}"` : `"${input.slice(0, 50)}…" (${input.length} characters)`;
}

/** Prefixes a child's issues with where the child sits and appends them to `into`, reusing arrays as valibot does. */
function collect(into: Issue[] | undefined, child: Issue[], item: v.IssuePathItem): Issue[] {
  for (const issue of child) {
    // Issues are fresh per run and owned by whoever runs the schema; valibot's object() prefixes them the same way.
    if (issue.path) issue.path.unshift(item);
    else (issue as { path?: v.IssuePathItem[] }).path = [item];
  }
  if (!into) return child;
  // A loop, not push(...child): an array of a million bad items would overflow the argument limit.
  for (const issue of child) into.push(issue);
  return into;
}

/** The dataset a walk returns: the object or array is still well-typed when something inside it failed. */
function finish(dataset: v.SuccessDataset<unknown>, output: unknown, issues: Issue[] | undefined): v.OutputDataset<unknown, Issue> {
  if (issues) return { typed: true, value: dataset.value, issues: issues as [Issue, ...Issue[]] };
  if (output !== undefined) dataset.value = output;
  return dataset;
}

/** Runs `action` only on values `guard` accepts: a keyword for one JSON type ignores the others. */
function when<T>(guard: (value: unknown) => value is T, action: v.BaseValidation<T, T, Issue>): Check {
  return {
    ...(action as unknown as Check),
    '~run': (dataset, config) =>
      guard(dataset.value) ? action['~run'](dataset as v.OutputDataset<T, Issue>, config) : dataset,
  };
}

/** `const` and `enum`: primitives by a Set lookup (SameValueZero, so 1 = 1.0), arrays and objects by jsonEqual. */
function oneOf(values: readonly unknown[], message: string): Check {
  const primitives = new Set(values.filter((value) => !isArray(value) && !isObject(value)));
  const structured = values.filter((value) => isArray(value) || isObject(value));
  return {
    kind: 'validation', type: 'json_enum', reference: oneOf, async: false, expects: null,
    '~run'(dataset, config) {
      const input = dataset.value;
      if (!dataset.typed || primitives.has(input)) return dataset;
      for (const value of structured) if (jsonEqual(value, input)) return dataset;
      v._addIssue(this, 'value', dataset, config, { message });
      return dataset;
    },
  };
}

/**
 * required + properties + additionalProperties in one pass, so one bad value does not hide the others.
 * `required` looks at the input, before defaults. The output is the input itself unless a child changed a
 * value or a default is missing, so a schema without defaults allocates nothing per object.
 */
function objectWalk(required: readonly string[], properties: ReadonlyMap<string, Node>, additional: Node | undefined): Walk {
  const names = [...properties.keys()];
  const defaults = [...properties].filter(([, node]) => node.fill !== undefined);
  return {
    kind: 'transformation', type: 'json_object', reference: objectWalk, async: false,
    '~run'(dataset, config) {
      const input = dataset.value;
      if (!isObject(input)) return dataset;
      let output: Json | undefined;
      let issues: Issue[] | undefined;
      for (const key of required) {
        if (Object.hasOwn(input, key)) continue;
        const path: [v.IssuePathItem] = [{ type: 'object', origin: 'key', input, key, value: undefined }];
        const message = 'required property is missing';
        (issues ??= []).push({ kind: 'transformation', type: 'json_object', input: undefined, expected: `"${key}"`, received: 'undefined', message, path });
      }
      for (const key of additional === undefined ? names : Object.keys(input)) {
        const node = properties.get(key) ?? additional;
        if (node === undefined || !Object.hasOwn(input, key)) continue;
        const value = input[key];
        const result = node.schema['~run']({ value }, config);
        if (result.issues) issues = collect(issues, result.issues, { type: 'object', origin: 'value', input, key, value });
        else if (result.value !== value) setOwn((output ??= copyObject(input)), key, result.value);
        if (issues && config.abortEarly) break;
      }
      if (!issues) for (const [key, node] of defaults) if (!Object.hasOwn(input, key)) setOwn((output ??= copyObject(input)), key, node.fill?.value);
      return finish(dataset, output, issues);
    },
  };
}

function arrayWalk(item: Node): Walk {
  return {
    kind: 'transformation', type: 'json_array', reference: arrayWalk, async: false,
    '~run'(dataset, config) {
      const input = dataset.value;
      if (!isArray(input)) return dataset;
      let output: unknown[] | undefined;
      let issues: Issue[] | undefined;
      for (let key = 0; key < input.length; key++) {
        const value = input[key];
        const result = item.schema['~run']({ value }, config);
        if (result.issues) issues = collect(issues, result.issues, { type: 'array', origin: 'value', input, key, value });
        else if (result.value !== value) (output ??= input.slice())[key] = result.value;
        if (issues && config.abortEarly) break;
      }
      return finish(dataset, output, issues);
    },
  };
}

/** Reads one keyword, throwing a SchemaError that names it when its value is not what `accept` wants. */
function read<T>(definition: Json, path: Path, keyword: string, accept: (value: unknown) => value is T, wanted: string): T | undefined {
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
    throw new SchemaError(path, `"pattern" is not a valid regular expression: ${(error as Error).message}`, 'pattern', { cause: error });
  }
}

function keywordChecks(definition: Json, path: Path): Check[] {
  const checks: Check[] = [];
  const count = (keyword: string) => read(definition, path, keyword, isCount, 'a non-negative integer');
  const bound = (keyword: string) => read(definition, path, keyword, isNumber, 'a finite number');
  if (Object.hasOwn(definition, 'const')) {
    const value = toJson(definition['const'], path, 'const');
    checks.push(oneOf([value], `must be equal to ${JSON.stringify(value)}`));
  }
  const options = read(definition, path, 'enum', isArray, 'a list of values')?.map((value) => toJson(value, path, 'enum'));
  if (options) checks.push(oneOf(options, `must be one of ${JSON.stringify(options)}`));
  const minLength = count('minLength');
  if (minLength !== undefined) checks.push(when(isString, v.minCodePoints(minLength, `must be at least ${minLength} characters`)));
  const maxLength = count('maxLength');
  if (maxLength !== undefined) checks.push(when(isString, v.maxCodePoints(maxLength, `must be at most ${maxLength} characters`)));
  const pattern = read(definition, path, 'pattern', isString, 'a string');
  if (pattern !== undefined) checks.push(when(isString, v.regex(compile(pattern, path), `must match the pattern ${pattern}`)));
  const format = read(definition, path, 'format', isFormat, `one of ${Object.keys(FORMATS).join(', ')}`);
  if (format !== undefined) checks.push(when(isString, v.check(FORMATS[format] ?? (() => false), `must be a valid ${format}`)));
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
  const additional = Object.hasOwn(definition, 'additionalProperties') && rest !== true
    ? buildNode(rest, [...path, 'additionalProperties'], 'unexpected property')
    : undefined;
  const required = read(definition, path, 'required', isUniqueStrings, 'a list of unique strings') ?? [];
  if (required.length > 0 || properties.size > 0 || additional) steps.push(objectWalk(required, properties, additional));
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
