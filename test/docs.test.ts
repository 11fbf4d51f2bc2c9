/**
 * Docs that cannot drift: every folder of src/ has a README naming exactly its `.ts` files (the README's
 * Layers table is test/layers.test.ts's), docs/PROTOCOL.md lists the code's error and close codes, and the
 * quick start's example output is what `bun run start` prints, line for line.
 *
 * How a README's `.ts` names are read: a bare name (`listener.ts`) is a file of the README's own folder; a
 * path starting with `./` or `../` is relative to that folder (`../http/wire.ts`); any other path is relative
 * to the repository root (`test/conformance.test.ts`). Every such name must exist.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode } from '../src/base/codes.ts';
import { Closes } from '../src/base/wire.ts';
import { waitFor } from './harness.ts';
import { spawnServer } from './process.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const ROOT = join(import.meta.dir, '..');
const SRC = join(ROOT, 'src');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const protocol = readFileSync(join(ROOT, 'docs', 'PROTOCOL.md'), 'utf8');

/** Every folder under src/, at any depth, as a path relative to src/ (`auth`, `protocol/x`). */
function srcFolders(under = ''): string[] {
  return readdirSync(join(SRC, under), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => {
      const folder = under === '' ? entry.name : `${under}/${entry.name}`;
      return [folder, ...srcFolders(folder)];
    })
    .sort();
}

const tsFilesIn = (dir: string) =>
  readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => entry.name)
    .sort();

// A `.ts` name anywhere in the text, with the path it is written with; not a bare extension such as `.d.ts`.
const TS_NAME = /(?<![\w./-])(?:\.{1,2}\/)*[\w-][\w./-]*\.ts\b/g;

/** Where a `.ts` name written in the README of `src/<folder>` points (see the rules above). */
function resolveMention(folder: string, name: string): string {
  if (!name.includes('/') || name.startsWith('./') || name.startsWith('../')) return join(SRC, folder, name);
  return join(ROOT, name);
}

/** What is wrong with `src/<folder>/README.md`, each problem naming the folder and the files. */
function folderReadmeProblems(folder: string): string[] {
  const path = join(SRC, folder, 'README.md');
  if (!existsSync(path))
    return [`src/${folder}/README.md is missing: write one naming ${tsFilesIn(join(SRC, folder)).join(', ')}`];
  const text = readFileSync(path, 'utf8');
  const problems: string[] = [];
  const missing = tsFilesIn(join(SRC, folder)).filter((file) => !text.includes(`\`${file}\``));
  if (missing.length > 0) problems.push(`src/${folder}/README.md does not name (in backticks): ${missing.join(', ')}`);
  const extra = [...new Set(text.match(TS_NAME) ?? [])].filter((name) => !existsSync(resolveMention(folder, name)));
  if (extra.length > 0) problems.push(`src/${folder}/README.md names files that do not exist: ${extra.join(', ')}`);
  return problems;
}

/** The lines of `markdown` under `heading` (a whole line such as `### Layout`), up to the next heading. */
function section(markdown: string, heading: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.indexOf(heading);
  if (start === -1) throw new Error(`no "${heading}" heading`);
  const end = lines.findIndex((line, index) => index > start && /^#{1,6} /.test(line));
  return lines.slice(start + 1, end === -1 ? undefined : end);
}

/** The first cells of the body rows of the first markdown table in `lines`, unwrapped from their backticks. */
function firstCells(lines: readonly string[]): string[] {
  const start = lines.findIndex((line) => /^\|[-| :]+\|$/.test(line));
  const end = lines.findIndex((line, index) => index > start && !line.startsWith('|'));
  return lines
    .slice(start + 1, end === -1 ? undefined : end)
    .flatMap((line) => /^\| `([^`]+)` \|/.exec(line)?.[1] ?? []);
}

describe('folder READMEs', () => {
  test.each(srcFolders())('src/%s/README.md names exactly the .ts files of its folder', (folder) => {
    expect(folderReadmeProblems(folder)).toEqual([]);
  });
});

describe('docs/PROTOCOL.md follows the code', () => {
  const errorRows = firstCells(section(protocol, '### Error codes'));

  test('its error-code table has exactly the codes of src/base/codes.ts', () => {
    expect(errorRows.toSorted()).toEqual(Object.keys(ErrorCode).toSorted());
  });

  test.each(Object.entries(Closes))('close cause %s is in its close-code table with its code', (label, cause) => {
    const rows = section(protocol, '## Close codes').filter((line) => line.startsWith(`| ${cause.code} |`));
    expect(rows.some((row) => row.includes(`\`${label}\``))).toBe(true);
  });
});

// The paragraph that introduces the quick start's example output, and the fence after it.
const QUICK_START = '`bun run start` with no database configured starts';

/** The example log lines the README shows after the quick-start paragraph. */
function quickStartLines(): string[] {
  const at = readme.indexOf(QUICK_START);
  const open = readme.indexOf('\n```\n', at);
  const close = readme.indexOf('\n```\n', open + 5);
  if (at === -1 || open === -1 || close === -1) throw new Error(`no example output after "${QUICK_START}"`);
  return readme.slice(open + 5, close).split('\n');
}

/**
 * A log line reduced to what must agree: `time` only has to be there, ports and the working directory are
 * the run's own. `keys` limits it to the README's fields when the README elides the rest with `, ...}`.
 */
function comparable(line: string, cwd: string, keys?: readonly string[]): Record<string, unknown> {
  const entry = JSON.parse(line) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of keys ?? Object.keys(entry)) {
    const value = entry[key];
    if (key === 'time') out[key] = Number.isNaN(Date.parse(String(value))) ? value : 'TIME';
    else if (key === 'port') out[key] = typeof value === 'number' ? 'PORT' : value;
    else if (typeof value === 'string')
      out[key] = value.replaceAll(cwd, '.').replace(/(127\.0\.0\.1|0\.0\.0\.0|localhost):\d+/g, '$1:PORT');
    else out[key] = value;
  }
  return out;
}

describe('the quick start', () => {
  test('its example output is what `bun run start` prints with no database configured', async () => {
    const shown = quickStartLines().map((line) => {
      const elided = line.endsWith(', ...}');
      const json = elided ? `${line.slice(0, -', ...}'.length)}}` : line;
      return { json, keys: elided ? Object.keys(JSON.parse(json)) : undefined };
    });
    // The shipped channels.toml with no database: the embedded PostgreSQL starts in the temporary working
    // directory's .data/. PORT=0 (from spawnServer) instead of 8080, which another program may hold.
    const server = await spawnServer({
      toml: '',
      env: { DATABASE_URL: '', HOST: '' },
      command: ['bun', join(SRC, 'main.ts'), '--config', join(ROOT, 'channels.toml')],
      readyMs: 60_000,
    });
    try {
      await waitFor(() => server.lines.length >= shown.length, 10_000, `${shown.length} lines of output`);
      const printed = server.lines.slice(0, shown.length);
      expect(printed.map((line, index) => comparable(line, server.cwd, shown[index]?.keys))).toEqual(
        shown.map(({ json }) => comparable(json, server.cwd)),
      );
    } finally {
      await server[Symbol.asyncDispose]();
      rmSync(server.cwd, { recursive: true, force: true });
    }
  }, 120_000);
});
