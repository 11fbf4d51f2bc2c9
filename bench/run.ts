/**
 * `bun run bench`: pg-notify-ws under load beside baselines measured in the same run (raw postgres.js
 * LISTEN, the database's ceiling, and the bare bridge), so every figure is a ratio. Starts a throwaway
 * embedded PostgreSQL (BENCH_DATABASE_URL overrides), the client processes and each scenario's servers;
 * all traffic stays on 127.0.0.0/8, every loop is bounded, and everything started is stopped at the
 * end, also on failure or Ctrl-C. Usage (the flags below) and the latest results: bench/RESULTS.md.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { auth } from './auth.ts';
import { capacity, fdlimit } from './capacity.ts';
import { startDatabase } from './database.ts';
import { durable } from './durable.ts';
import { fanout } from './fanout.ts';
import { ingest } from './ingest.ts';
import { large } from './large.ts';
import { latency } from './latency.ts';
import { multiplexed } from './multiplexed.ts';
import { startNotifier } from './notifier.ts';
import { startPool } from './pool.ts';
import { renderReport, type Section, type TargetCheck } from './report.ts';
import { scale } from './scale.ts';
import type { Context } from './scenario.ts';
import { stopAllTargets } from './servers.ts';
import { streams } from './streams.ts';
import { tracing } from './tracing.ts';
import { workers } from './workers.ts';
import { writers } from './writers.ts';

// In the order they run; `schema` is part of fanout (ours only).
const SCENARIOS = {
  capacity,
  fanout,
  multiplexed,
  latency,
  workers,
  large,
  fdlimit,
  auth,
  tracing,
  scale,
  streams,
  writers,
  ingest,
  durable,
};
const NAMES = [...Object.keys(SCENARIOS), 'schema'];
const PRODUCERS = 4;
const ADDRESSES = 8;
const WINDOW_BYTES = 512 * 1024;

const usage = (message: string): never => {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
};
const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string', multiple: true, default: [] },
    profile: { type: 'boolean', default: false },
    generators: { type: 'string', default: '4' },
    levels: { type: 'string' },
    out: { type: 'string' },
  },
});
const only = new Set(values.only.flatMap((value) => value.split(',').map((name) => name.trim())).filter(Boolean));
for (const name of only)
  if (!NAMES.includes(name)) usage(`unknown scenario "${name}" (choose from ${NAMES.join(', ')})`);
const generators = Number(values.generators);
if (!Number.isInteger(generators) || generators < 1 || generators > 16) usage('--generators must be 1..16');
const levels = values.levels?.split(',').map((text) => Number(text.trim()));
if (levels !== undefined && !levels.every((n) => Number.isInteger(n) && n >= 1 && n <= 1_000_000))
  usage('--levels takes client counts 1..1,000,000, separated by commas');
const partial = values.quick || only.size > 0;
const out = values.out ?? (partial ? undefined : join(import.meta.dir, 'RESULTS.md'));

const started = performance.now();
const say = (line: string) => {
  const seconds = Math.round((performance.now() - started) / 1000);
  const clock = `${String(Math.floor(seconds / 60)).padStart(2, '0')}:${String(seconds % 60).padStart(2, '0')}`;
  process.stderr.write(`[${clock}] ${line}\n`);
};

// Undone in reverse order of setup, once, whether the run ends, fails or is interrupted.
const cleanups = new AsyncDisposableStack();
const cleanup = () => cleanups.disposeAsync().catch((error: unknown) => say(`cleanup failed: ${String(error)}`));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping everything`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  const startedAt = new Date();
  say(`starting PostgreSQL${process.env['BENCH_DATABASE_URL'] ? ' (BENCH_DATABASE_URL)' : ' (embedded)'}`);
  const db = await startDatabase(process.env);
  cleanups.defer(() => db.stop());
  // Scenarios stop their own servers; this catches any an interruption left running.
  cleanups.defer(stopAllTargets);
  const pool = cleanups.use(await startPool(generators));
  const notifier = await startNotifier(db.url, PRODUCERS);
  cleanups.defer(() => notifier.end());
  const profileDir = values.profile ? mkdtempSync(join(tmpdir(), 'pgws-bench-profile-')) : undefined;
  const rig = { db, pool, notifier, addresses: ADDRESSES, windowBytes: WINDOW_BYTES };
  const context: Context = { rig, quick: values.quick, profileDir, say, only, levels };
  const sections: Section[] = [];
  const targets: TargetCheck[] = [];
  const failures: string[] = [];
  for (const [name, scenario] of Object.entries(SCENARIOS)) {
    if (only.size > 0 && !only.has(name) && !(name === 'fanout' && only.has('schema'))) continue;
    try {
      const outcome = await scenario(context);
      sections.push(...outcome.sections);
      targets.push(...outcome.targets);
    } catch (error) {
      const message = `${name}: ${error instanceof Error ? error.message : String(error)}`;
      say(`FAILED ${message}`);
      failures.push(message);
    }
  }
  const command = ['bun run bench', ...Bun.argv.slice(2)].join(' ');
  const seconds = (performance.now() - started) / 1000;
  const info = { command, startedAt, seconds, db, generators, addresses: ADDRESSES, failures };
  const report = renderReport(info, sections, targets);
  process.stdout.write(`${report}\n`);
  if (out !== undefined) {
    writeFileSync(out, report);
    say(`wrote ${out}`);
  }
  if (profileDir !== undefined) say(`CPU profiles of our server: ${profileDir}`);
  return failures.length === 0 ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  say(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
} finally {
  await cleanup();
}
process.exit(code);
