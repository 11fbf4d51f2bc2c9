/**
 * What the command-line tools (`bun run token`, `bun run types`, and later ones) share with `main.ts`:
 * reading the config file named by `--config`, and turning a thrown error into one line and an exit code
 * (2 for a config or usage error, 1 otherwise).
 */
import { resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { ConfigError } from '../base/errors.ts';

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

/** `node:util`'s parseArgs, with its refusals (an unknown flag, a missing value) as ConfigErrors: exit 2. */
export function parseArguments<const Options extends ParseArgsConfig['options']>(options: Options) {
  try {
    return parseArgs({ args: Bun.argv.slice(2), options, strict: true, allowPositionals: false });
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error), { cause: error });
  }
}
