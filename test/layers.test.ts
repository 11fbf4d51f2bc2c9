/**
 * The folders of src/ are layers, in the order the README's "Layers" table gives: a file imports its own
 * folder and the layers below, never a layer above or a folder beside it, and no two files import each
 * other through any path. Every import counts, type-only ones included: a type that points the wrong way
 * still means the lower layer knows of the higher one.
 */
import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const ROOT = join(import.meta.dir, '..');
const SRC = join(ROOT, 'src');

/** Every .ts file under src/, as a path relative to src/ (`db/listener.ts`, `main.ts`). */
function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

/** The folder a file belongs to: its first path segment, or `.` for the top-level files. */
const folderOf = (file: string) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : '.');

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

/** The src files `file` imports (relative specifiers only: packages are not layers). */
export function importsOf(file: string, text = readFileSync(join(SRC, file), 'utf8')): string[] {
  return [...text.matchAll(IMPORT)]
    .map((match) => normalize(join(dirname(file), match[1]!)))
    .filter((target) => !target.startsWith('..'));
}

/**
 * The README's layer table: `| 3 | \`schema/\` | ... |` rows, bottom first. Returns the layer of each
 * folder (`db`) and of each top-level file (as `.` with the file listed by name).
 */
export function readLayers(readme: string): { folders: Map<string, number>; topFiles: Map<string, number> } {
  const section = readme.slice(readme.indexOf('### Layers'));
  const folders = new Map<string, number>();
  const topFiles = new Map<string, number>();
  for (const row of section.matchAll(/^\| (\d+) \| ([^|]+) \|/gm)) {
    const layer = Number(row[1]);
    for (const [, name] of row[2]!.matchAll(/`([^`]+)`/g)) {
      if (name!.endsWith('/')) folders.set(name!.slice(0, -1), layer);
      else topFiles.set(name!, layer);
    }
  }
  return { folders, topFiles };
}

/** Every import against the order, as `from -> to (layer m -> n)`. */
export function wrongWay(
  graph: ReadonlyMap<string, readonly string[]>,
  layerOf: (file: string) => number | undefined,
): string[] {
  const wrong: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      if (folderOf(from) === folderOf(to)) continue;
      const [above, below] = [layerOf(from), layerOf(to)];
      if (above === undefined || below === undefined || below >= above) {
        wrong.push(`${from} -> ${to} (layer ${above} -> ${below})`);
      }
    }
  }
  return wrong;
}

/** The import cycles between files, each as `a -> b -> a`. */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') found.push([...path.slice(path.indexOf(next)), next].join(' -> '));
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
}

const files = sources();
const graph = new Map(files.map((file) => [file, importsOf(file)]));
const { folders, topFiles } = readLayers(readFileSync(join(ROOT, 'README.md'), 'utf8'));
const layerOf = (file: string) => (folderOf(file) === '.' ? topFiles.get(file) : folders.get(folderOf(file)));

describe('the layers of src/', () => {
  test('the README names the layer of every folder and top-level file of src/, and nothing else', () => {
    const present = new Set(files.map((file) => (folderOf(file) === '.' ? file : folderOf(file))));
    const named = new Set([...folders.keys(), ...topFiles.keys()]);
    expect({ unnamed: [...present].filter((name) => !named.has(name)).sort() }).toEqual({ unnamed: [] });
    expect({ missing: [...named].filter((name) => !present.has(name)).sort() }).toEqual({ missing: [] });
  });

  test('every import goes to the same folder or a lower layer', () => {
    expect(wrongWay(graph, layerOf)).toEqual([]);
  });

  test('no import cycle between files', () => {
    expect(cycles(graph)).toEqual([]);
  });

  test('the browser client imports nothing of src/ but the leaf', () => {
    const outside = [...graph]
      .filter(([file]) => folderOf(file) === 'client')
      .flatMap(([file, targets]) =>
        targets.filter((to) => !['client', 'base'].includes(folderOf(to))).map((to) => `${file} -> ${to}`),
      );
    expect(outside).toEqual([]);
  });
});

describe('the checks themselves', () => {
  const layers = new Map([
    ['base', 1],
    ['db', 2],
    ['http', 3],
  ]);
  const of = (file: string) => layers.get(folderOf(file));

  test('an import of a higher layer is reported', () => {
    const wrong = wrongWay(new Map([['db/listener.ts', ['http/server.ts']]]), of);
    expect(wrong).toEqual(['db/listener.ts -> http/server.ts (layer 2 -> 3)']);
  });

  test('an import of a folder beside it, or of one the table does not name, is reported', () => {
    const beside = new Map([...layers, ['auth', 2]]);
    const wrong = wrongWay(
      new Map([['db/listener.ts', ['auth/tokens.ts', 'nowhere/x.ts', 'base/log.ts', 'db/queries.ts']]]),
      (file) => beside.get(folderOf(file)),
    );
    expect(wrong).toEqual([
      'db/listener.ts -> auth/tokens.ts (layer 2 -> 2)',
      'db/listener.ts -> nowhere/x.ts (layer 2 -> undefined)',
    ]);
  });

  test('a cycle between files is reported, type-only imports included', () => {
    const text = "import type { Peer } from './session.ts';\nimport { x } from '../base/log.ts';";
    expect(importsOf('protocol/subscriptions.ts', text)).toEqual(['protocol/session.ts', 'base/log.ts']);
    const graph = new Map([
      ['protocol/session.ts', ['protocol/subscriptions.ts']],
      ['protocol/subscriptions.ts', ['protocol/session.ts']],
    ]);
    expect(cycles(graph)).toEqual(['protocol/session.ts -> protocol/subscriptions.ts -> protocol/session.ts']);
  });

  test('the table is read from the README rows, bottom first', () => {
    const readme =
      '### Layers\n\n| layer | folders |\n|---|---|\n| 1 | `base/` |\n| 2 | `channels/`, `auth/` |\n| 3 | `main.ts` |\n';
    const read = readLayers(readme);
    expect([...read.folders]).toEqual([
      ['base', 1],
      ['channels', 2],
      ['auth', 2],
    ]);
    expect([...read.topFiles]).toEqual([['main.ts', 3]]);
  });
});
