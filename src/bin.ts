#!/usr/bin/env bun
/**
 * The `pg-notify-ws` command (package.json `bin`), for projects that added this one as a dependency:
 * `bunx pg-notify-ws [start] [--config FILE]`, and `check`, `sql`, `trigger`, `types` as `bun run NAME` does
 * here. It only picks the entry point: the subcommand is taken out of argv and the entry point, which reads
 * argv itself, is loaded. Workers that `main.ts` spawns run this same file with the arguments left, so they
 * start too.
 */
import { runTool } from './cli/entry.ts';

const USAGE = `usage: pg-notify-ws [start] [--config channels.toml]   run the bridge
       pg-notify-ws check [--config FILE]               validate a config without connecting
       pg-notify-ws sql                                 print the install script of pgws.notify
       pg-notify-ws trigger --table T --channel C ...   print (or --apply) a row-change trigger
       pg-notify-ws types [--config FILE] [--out FILE]  write the channels' payload types
`;

/** Each subcommand: the entry point it loads, and what it adds to the arguments. */
const COMMANDS: Readonly<Record<string, () => Promise<unknown>>> = {
  start: () => import('./main.ts'),
  check: () => {
    process.argv.push('--check');
    return import('./main.ts');
  },
  sql: () => import('./cli/sql.ts'),
  trigger: () => import('./cli/trigger.ts'),
  types: async () => runTool((await import('./cli/types.ts')).main),
};

// Bun.argv is process.argv: [bun, this file, subcommand?, ...arguments].
const first = process.argv[2];
if (first === '--help' || first === '-h' || first === 'help') {
  process.stdout.write(USAGE);
} else if (first === undefined || first.startsWith('-')) {
  await COMMANDS['start']?.();
} else {
  const command = COMMANDS[first];
  if (command === undefined) {
    process.stderr.write(`pg-notify-ws: unknown command ${JSON.stringify(first)}\n${USAGE}`);
    process.exit(2);
  }
  process.argv.splice(2, 1);
  await command();
}
