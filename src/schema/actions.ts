/**
 * The valibot actions behind inline schemas, where JSON Schema's semantics differ from valibot's
 * built-ins: `const`/`enum` by deep JSON equality, keywords that skip values of other types, and the
 * object and array walks that check properties and fill defaults without `in` (so `toString` is not
 * "present") and without copying objects that need no change.
 */
import * as v from 'valibot';

export type Json = Record<string, unknown>;
export type Issue = v.BaseIssue<unknown>;
export type Schema = v.GenericSchema<unknown, unknown>;
export type Check = v.BaseValidation<unknown, unknown, Issue>;
type Walk = v.BaseTransformation<unknown, unknown, Issue>;
/** A built schema object plus the default its parent fills in when the property is missing. */
export interface Node {
  readonly schema: Schema;
  readonly fill: { readonly value: unknown } | undefined;
}

export const isString = (value: unknown): value is string => typeof value === 'string';
export const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
export const isArray = (value: unknown): value is unknown[] => Array.isArray(value);
export const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
export const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;

/** `__proto__` is an accessor on Object.prototype: assigning it would re-parent the object, not add a key. */
export function setOwn(target: Json, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
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
  return (
    keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]))
  );
}

/** How an input shows in a message: strings quoted like valibot does, but cut short so a huge one stays readable. */
export function describe(input: unknown): string {
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
function finish(
  dataset: v.SuccessDataset<unknown>,
  output: unknown,
  issues: Issue[] | undefined,
): v.OutputDataset<unknown, Issue> {
  if (issues) return { typed: true, value: dataset.value, issues: issues as [Issue, ...Issue[]] };
  if (output !== undefined) dataset.value = output;
  return dataset;
}

/** Runs `action` only on values `guard` accepts: a keyword for one JSON type ignores the others. */
export function when<T>(guard: (value: unknown) => value is T, action: v.BaseValidation<T, T, Issue>): Check {
  return {
    ...(action as unknown as Check),
    '~run': (dataset, config) =>
      guard(dataset.value) ? action['~run'](dataset as v.OutputDataset<T, Issue>, config) : dataset,
  };
}

/** `const` and `enum`: primitives by a Set lookup (SameValueZero, so 1 = 1.0), arrays and objects by jsonEqual. */
export function oneOf(values: readonly unknown[], message: string): Check {
  const primitives = new Set(values.filter((value) => !isArray(value) && !isObject(value)));
  const structured = values.filter((value) => isArray(value) || isObject(value));
  return {
    kind: 'validation',
    type: 'json_enum',
    reference: oneOf,
    async: false,
    expects: null,
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
export function objectWalk(
  required: readonly string[],
  properties: ReadonlyMap<string, Node>,
  additional: Node | undefined,
): Walk {
  const names = [...properties.keys()];
  const defaults = [...properties].filter(([, node]) => node.fill !== undefined);
  return {
    kind: 'transformation',
    type: 'json_object',
    reference: objectWalk,
    async: false,
    '~run'(dataset, config) {
      const input = dataset.value;
      if (!isObject(input)) return dataset;
      let output: Json | undefined;
      let issues: Issue[] | undefined;
      for (const key of required) {
        if (Object.hasOwn(input, key)) continue;
        const path: [v.IssuePathItem] = [{ type: 'object', origin: 'key', input, key, value: undefined }];
        const message = 'required property is missing';
        issues ??= [];
        issues.push({
          kind: 'transformation',
          type: 'json_object',
          input: undefined,
          expected: `"${key}"`,
          received: 'undefined',
          message,
          path,
        });
      }
      for (const key of additional === undefined ? names : Object.keys(input)) {
        const node = properties.get(key) ?? additional;
        if (node === undefined || !Object.hasOwn(input, key)) continue;
        const value = input[key];
        const result = node.schema['~run']({ value }, config);
        if (result.issues)
          issues = collect(issues, result.issues, { type: 'object', origin: 'value', input, key, value });
        else if (result.value !== value) {
          output ??= copyObject(input);
          setOwn(output, key, result.value);
        }
        if (issues && config.abortEarly) break;
      }
      if (!issues)
        for (const [key, node] of defaults)
          if (!Object.hasOwn(input, key)) {
            output ??= copyObject(input);
            setOwn(output, key, node.fill?.value);
          }
      return finish(dataset, output, issues);
    },
  };
}

/** items: every element through one schema; the output is the input array unless an element changed. */
export function arrayWalk(item: Node): Walk {
  return {
    kind: 'transformation',
    type: 'json_array',
    reference: arrayWalk,
    async: false,
    '~run'(dataset, config) {
      const input = dataset.value;
      if (!isArray(input)) return dataset;
      let output: unknown[] | undefined;
      let issues: Issue[] | undefined;
      for (let key = 0; key < input.length; key++) {
        const value = input[key];
        const result = item.schema['~run']({ value }, config);
        if (result.issues)
          issues = collect(issues, result.issues, { type: 'array', origin: 'value', input, key, value });
        else if (result.value !== value) {
          output ??= input.slice();
          output[key] = result.value;
        }
        if (issues && config.abortEarly) break;
      }
      return finish(dataset, output, issues);
    },
  };
}
