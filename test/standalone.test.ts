/**
 * The repository stands alone: a clone into an empty folder must pass `bun test` with nothing beside it, so
 * no tracked file may read or name a path outside the checkout (the shared folder next to a developer's
 * checkout held the protocol contract and the JSON Schema Test Suite; both are in the repository now:
 * docs/PROTOCOL.md and test/fixtures/json-schema-test-suite).
 */
import { expect, setDefaultTimeout, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const ROOT = join(import.meta.dir, '..');

// The reference may say where its contract came from; nothing else may point there.
const EXEMPT = new Set(['docs/PROTOCOL.md']);

// Written as regular expressions so that this file, which is tracked too, does not match itself.
const OUTSIDE: readonly RegExp[] = [
  /\.\.\/shared\b/,
  /\bshared\/PROTOCOL\.md/,
  /\bshared\/conformance\b/,
  // The same climb spelled as path.join segments, '..' and the folder's name each a string of its own.
  /['"`]\.\.['"`]\s*,\s*['"`]shared['"`]/,
];

/** Every tracked file, as `git ls-files` lists it (paths relative to the root). */
function trackedFiles(): string[] {
  const listed = Bun.spawnSync(['git', 'ls-files', '-z'], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
  if (listed.exitCode !== 0) throw new Error(`git ls-files failed in ${ROOT}: ${listed.stderr.toString()}`);
  return listed.stdout.toString().split('\0').filter(Boolean);
}

/** `file:line: text` for every line of a tracked file that names a path outside the repository. */
function outsideMentions(files: readonly string[]): string[] {
  const found: string[] = [];
  for (const file of files) {
    // A tracked file deleted in the working tree has nothing to say.
    if (EXEMPT.has(file) || !existsSync(join(ROOT, file))) continue;
    const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
    lines.forEach((line, index) => {
      if (OUTSIDE.some((pattern) => pattern.test(line))) found.push(`${file}:${index + 1}: ${line.trim()}`);
    });
  }
  return found;
}

test('git ls-files sees the repository (so the check below is not vacuous)', () => {
  const files = trackedFiles();
  expect(files).toContain('package.json');
  expect(files).toContain('docs/PROTOCOL.md');
});

test('no tracked file reads or names a path outside the repository', () => {
  expect(outsideMentions(trackedFiles())).toEqual([]);
});

// Each written with @ for the folder's name, for the same reason.
const mention = (text: string) => text.replaceAll('@', 'shared');
test.each([
  ['a relative climb', 'see ../@/PROTOCOL.md'],
  ['the contract by its old name', 'the contract (@/PROTOCOL.md)'],
  ['the old suite folder', 'read from @/conformance/json-schema-test-suite'],
  ['path segments', "join(import.meta.dir, '..', '..', '@', 'conformance')"],
])('recognises %s', (_, line) => {
  expect(OUTSIDE.some((pattern) => pattern.test(mention(line)))).toBe(true);
});
