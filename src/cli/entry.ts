/**
 * What the command-line tools (`bun run token`, `bun run types`, and later ones) share with `main.ts`:
 * reading the config file named by `--config`, and turning a thrown error into one line and an exit code
 * (2 for a config or usage error, 1 otherwise).
 */
import { resolve } from 'node:path';
import { ConfigError } from '../errors.ts';

/** The config file's absolute path and text; a file that cannot be read is a ConfigError naming the option. */
export async function readConfigFile(option: string): Promise<{ file: string; text: string }> {
  const file = resolve(option);
  const text = await Bun.file(file)
    .text()
    .catch(() => undefined);
  if (text === undefined) throw new ConfigError(`${option}: cannot read the config file (use --config FILE)`);
  return { file, text };
}

/** Runs a tool's main and exits: 0, or one line on stderr and 2 (ConfigError) or 1. */
export function runTool(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(error instanceof ConfigError ? 2 : 1);
    },
  );
}
