/**
 * The keywords that check a value without looking inside it: `type`, which starts the pipe, and `const`,
 * `enum`, string lengths, `pattern`, `format`, number bounds and item counts, each built into one valibot check
 * that skips values of other types (JSON Schema's rule). Native valibot actions are used where their semantics match exactly
 * (number bounds, item counts, regex). String lengths count code points by hand, and only when the UTF-16
 * length cannot decide, where valibot's code-point actions walk every string in full.
 */
import * as v from 'valibot';
import {
  type Check,
  describe,
  isArray,
  isCount,
  isNumber,
  isString,
  type Json,
  oneOf,
  type Schema,
  when,
} from './actions.ts';
import { FORMATS, isFormat, type Path, read, SchemaError, TYPES, toJson } from './keywords.ts';

/** The `type` keyword: the start of every pipe, with valibot's wording for a wrong type. */
export function typeCheck(names: readonly string[]): Schema {
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

/** The checks of one schema object's value keywords, in a fixed order; throws SchemaError for a bad value. */
export function keywordChecks(definition: Json, path: Path): Check[] {
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
