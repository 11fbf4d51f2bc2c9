/**
 * `bun run sql`: prints the install script of `pgws.notify` (src/db/script.ts) for psql or a migration:
 * `bun run sql | psql "$DATABASE_URL"`. Reads nothing and connects nowhere.
 */
import { INSTALL_SQL } from '../db/script.ts';

const args = Bun.argv.slice(2);
if (args.length > 0 && !(args.length === 1 && (args[0] === '--help' || args[0] === '-h'))) {
  process.stderr.write(`sql: unexpected argument ${JSON.stringify(args[0])} (usage: bun run sql > pgws.sql)\n`);
  process.exit(2);
}
if (args.length > 0) {
  process.stdout.write(
    'usage: bun run sql | psql "$DATABASE_URL"   (prints the idempotent install script of pgws.notify)\n',
  );
  process.exit(0);
}
process.stdout.write(INSTALL_SQL);
