/**
 * What the command-line tools (`bun run build`, `token`, `trigger`, `types`) share with `main.ts`: reading the
 * config file named by `--config`, and ending the process with the command's code, or with a thrown error as
 * one line and `exitCodeOf`'s code (2 for a config or usage error, 1 otherwise).
 */
import { resolve } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { ConfigError, exitCodeOf, isUserError } from '../base/errors.ts';

/** The config file's absolute path and text; a file that cannot be read is a ConfigError naming the option. */
export async function readConfigFile(option: string): Promise<{ file: string; text: string }> {
  const file = resolve(option);
  const text = await Bun.file(file)
    .text()
    .catch(() => undefined);
  if (text === undefined) throw new ConfigError(`${option}: cannot read the config file (use --config FILE)`);
  return { file, text };
}

/** How {@link runTool} reports an error: `prefix` starts the line; `stack` prints a bug's stack (not a user error's). */
export interface Reporting {
  readonly prefix?: string;
  readonly stack?: boolean;
}

/** Runs a command's main and exits with the code it returns (0 if none), or reports what it threw and exits. */
export function runTool(main: () => Promise<unknown>, reporting: Reporting = {}): void {
  const { prefix = '', stack = false } = reporting;
  main().then(
    (code) => process.exit(typeof code === 'number' ? code : 0),
    (error: unknown) => {
      const text =
        stack && !isUserError(error)
          ? `fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`
          : error instanceof Error
            ? error.message
            : String(error);
      process.stderr.write(`${prefix}${text}\n`);
      process.exit(exitCodeOf(error));
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
