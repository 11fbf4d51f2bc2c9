import { afterAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { buildInlineSchema, SchemaError } from '../src/schema/compile.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

/*
 * The official JSON Schema Test Suite (draft 2020-12) files for the keywords inline schemas support, vendored in
 * test/fixtures/json-schema-test-suite (its README names the upstream commit). Which groups must build is decided
 * here by walking each schema with our own keyword list, so the converter cannot pass by refusing what it should
 * support. No group or instance is special-cased.
 */

const SUITE = join(import.meta.dir, 'fixtures', 'json-schema-test-suite', 'tests', 'draft2020-12');
// Named, not listed from the folder: a file lost from the copy must fail here, not shrink the run.
const FILES = [
  'additionalProperties',
  'anyOf',
  'const',
  'default',
  'enum',
  'exclusiveMaximum',
  'exclusiveMinimum',
  'items',
  'maxItems',
  'maxLength',
  'maximum',
  'minItems',
  'minLength',
  'minimum',
  'pattern',
  'properties',
  'required',
  'type',
].map((keyword) => `${keyword}.json`);
const missing = FILES.filter((file) => !existsSync(join(SUITE, file)));
if (missing.length > 0)
  throw new Error(`the vendored JSON Schema Test Suite lacks ${missing.join(', ')} in ${SUITE}: restore them from git`);
const SUPPORTED = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'const',
  'default',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minItems',
  'maxItems',
  'anyOf',
  'description',
  '$schema',
]);

// Totals computed independently when the suite files were added (85 + 16 = 101 groups, 321 instances built).
const EXPECTED = { built: 85, right: 321, refused: 16 };

interface Group {
  readonly description: string;
  readonly schema: unknown;
  readonly tests: readonly { readonly description: string; readonly data: unknown; readonly valid: boolean }[];
}

type Table = Record<string, unknown>;
const isTable = (value: unknown): value is Table =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Collects unsupported keywords and every schema object carrying a `default`, following only subschema keywords. */
function walk(schema: unknown, unsupported: Set<string>, withDefault: Table[]): void {
  if (!isTable(schema)) return;
  for (const [keyword, value] of Object.entries(schema)) {
    if (!SUPPORTED.has(keyword)) unsupported.add(keyword);
    else if (keyword === 'default') withDefault.push(schema);
    else if (keyword === 'properties' && isTable(value))
      for (const sub of Object.values(value)) walk(sub, unsupported, withDefault);
    else if (keyword === 'items' || keyword === 'additionalProperties') walk(value, unsupported, withDefault);
    else if (keyword === 'anyOf' && Array.isArray(value)) for (const sub of value) walk(sub, unsupported, withDefault);
  }
}

/** Our one deviation: a default must pass its own subschema (judged with `default` removed). */
function hasInvalidDefault(withDefault: readonly Table[]): boolean {
  return withDefault.some(({ default: value, ...rest }) => !v.is(buildInlineSchema(rest), value));
}

function refusal(schema: unknown): SchemaError {
  try {
    buildInlineSchema(schema);
  } catch (error) {
    if (error instanceof SchemaError) return error;
    throw error;
  }
  throw new Error('the schema was built, but it should have been refused');
}

const counts = { built: 0, right: 0, refused: 0 };
describe.each(FILES)('%s', (file) => {
  const groups = JSON.parse(readFileSync(join(SUITE, file), 'utf8')) as Group[];

  test.each(groups.map((group) => [group.description, group] as const))('%s', (_, group) => {
    const unsupported = new Set<string>();
    const withDefault: Table[] = [];
    walk(group.schema, unsupported, withDefault);

    if (unsupported.size > 0) {
      const error = refusal(group.schema);
      expect([...unsupported]).toContain(error.keyword ?? '(none)');
      expect(error.message).toContain(`"${error.keyword}"`);
      counts.refused++;
      return;
    }
    if (hasInvalidDefault(withDefault)) {
      const error = refusal(group.schema);
      expect(error.keyword).toBe('default');
      expect(error.message).toContain('"default"');
      counts.refused++;
      return;
    }
    const schema = buildInlineSchema(group.schema);
    counts.built++;
    const wrong = group.tests
      .filter((instance) => v.safeParse(schema, instance.data).success !== instance.valid)
      .map((instance) => `${instance.description} (expected ${instance.valid ? 'valid' : 'invalid'})`);
    counts.right += group.tests.length - wrong.length;
    expect(wrong).toEqual([]);
  });
});

afterAll(() => {
  console.log(
    `conformance: ${counts.built} groups built, ${counts.right} instances right, ${counts.refused} groups refused`,
  );
  expect(counts).toEqual(EXPECTED);
});
