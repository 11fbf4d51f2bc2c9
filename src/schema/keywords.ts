/**
 * The vocabulary of inline schemas and how a definition is read: the keywords we know, the types and formats
 * they may name, what each keyword's value must be, and the SchemaError that names the keyword when it is not.
 * Reading copies values out of TOML or JSON into frozen JSON, refusing what JSON cannot hold.
 */
import { isArray, isNumber, isObject, isString, type Json, setOwn } from './actions.ts';
import { isDate, isDateTime, isEmail, isUri, isUuid } from './formats.ts';

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

/** Where a schema object sits in the definition: keys and `anyOf` indexes from the root. */
export type Path = readonly (string | number)[];

/** The `$schema` values accepted: draft 2020-12, the only dialect supported. */
export const SCHEMA_URIS = new Set([
  'https://json-schema.org/draft/2020-12/schema',
  'https://json-schema.org/draft/2020-12/schema#',
]);
/** Every keyword a schema object may hold; any other is refused, so a typo never passes silently. */
export const KEYWORDS = new Set([
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

/** The names `type` may use, each with its JSON Schema meaning (`integer` includes 1.0). */
export const TYPES: Readonly<Record<string, (value: unknown) => boolean>> = {
  string: isString,
  number: isNumber,
  integer: Number.isInteger,
  boolean: (x) => typeof x === 'boolean',
  null: (x) => x === null,
  object: isObject,
  array: isArray,
};
/** The names `format` may use; any other is refused rather than ignored as the draft allows. */
export const FORMATS: Readonly<Record<string, (text: string) => boolean>> = {
  'date-time': isDateTime,
  date: isDate,
  email: isEmail,
  uuid: isUuid,
  uri: isUri,
};

/**
 * A table as TOML or JSON builds it: smol-toml gives tables a null prototype, JSON.parse Object.prototype;
 * anything else (a TomlDate) is not JSON.
 */
export const isPlain = (value: unknown): value is Json =>
  isObject(value) && [Object.prototype, null].includes(Object.getPrototypeOf(value));

/** A frozen copy of a TOML or JSON value, refusing what JSON cannot hold (TOML dates, inf, nan). */
export function toJson(value: unknown, path: Path, keyword: string): unknown {
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
export function read<T>(
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

/** `required`: names, each once. */
export const isUniqueStrings = (value: unknown): value is string[] =>
  isArray(value) && value.every(isString) && new Set(value).size === value.length;
/** `type`: one known name, or a non-empty list of distinct ones. */
export const isTypes = (value: unknown): value is string | string[] =>
  (isString(value) && Object.hasOwn(TYPES, value)) ||
  (isUniqueStrings(value) && value.length > 0 && value.every((name) => Object.hasOwn(TYPES, name)));
/** `$schema`: the 2020-12 dialect. */
export const isSchemaUri = (value: unknown): value is string => isString(value) && SCHEMA_URIS.has(value);
/** `format`: one of FORMATS. */
export const isFormat = (value: unknown): value is string => isString(value) && Object.hasOwn(FORMATS, value);
/** `anyOf`: a non-empty list (each item is read as a schema in turn). */
export const isSchemaList = (value: unknown): value is unknown[] => isArray(value) && value.length > 0;
