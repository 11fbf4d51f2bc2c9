import * as v from 'valibot';
import { arrayWalk, type Issue, isString, type Node, objectWalk, type Schema } from './actions.ts';
import { keywordChecks, typeCheck } from './checks.ts';
import {
  isPlain,
  isSchemaList,
  isSchemaUri,
  isTypes,
  isUniqueStrings,
  KEYWORDS,
  type Path,
  read,
  SCHEMA_URIS,
  SchemaError,
  TYPES,
  toJson,
} from './keywords.ts';

export { SchemaError } from './keywords.ts';

/*
 * Inline channel schemas: a JSON Schema (draft 2020-12) subset written in TOML, built once into a valibot
 * schema. Each schema object becomes one pipe: a type check, then keyword checks that skip values of other
 * types (checks.ts), then the object/array walk that fills defaults, then anyOf. What a keyword may hold is
 * read in keywords.ts; `format` checks live in formats.ts. Objects and arrays are walked by hand (actions.ts)
 * because valibot's object schemas look keys up with `in` (so `toString` is always "present") and rebuild
 * every value on every run.
 */

// valibot types pipe() as fixed-length overloads; a list built at run time needs its variadic implementation.
const pipe = v.pipe as unknown as (schema: Schema, ...items: v.PipeItem<unknown, unknown, Issue>[]) => Schema;

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
