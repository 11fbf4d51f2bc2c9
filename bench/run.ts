/**
 * `bun run bench`: pg-notify-ws under load, beside two baselines measured in the same run (raw
 * postgres.js LISTEN, the database's ceiling; and the ~30-line bare bridge in bench/bare.ts), so every
 * figure is a ratio. Flags: --quick (smaller counts, ~1 min), --only SCENARIO (capacity, fanout,
 * schema, multiplexed, latency, workers, large, fdlimit, auth, scale; repeatable; --scenario is the
 * same), --profile, --generators N, --levels N,N (the scale scenario's client counts), --out FILE.
 *
 * Starts a throwaway embedded PostgreSQL (BENCH_DATABASE_URL overrides), generator processes
 * (bench/clients.ts) and each scenario's server processes; all traffic stays on 127.0.0.0/8, every
 * loop is bounded, and everything started is stopped at the end, also on failure or Ctrl-C.
 * Full usage and the latest results: bench/RESULTS.md.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { auth } from './auth.ts';
import { capacity } from './capacity.ts';
import { type BenchDatabase, startDatabase } from './database.ts';
import { fanout } from './fanout.ts';
import { fdLimit } from './fdlimit.ts';
import { type Fleet, startFleet } from './fleet.ts';
import { large } from './large.ts';
import { latency } from './latency.ts';
import { multiplexed } from './multiplexed.ts';
import { type Notifier, startNotifier } from './notifier.ts';
import { renderReport } from './report.ts';
import { scale } from './scale.ts';
import type { Context, Scenario } from './scenario.ts';
import type { Section, TargetCheck } from './stats.ts';
import { stopAllTargets } from './target.ts';
import { tracing } from './tracing.ts';
import { workers } from './workers.ts';

const SCENARIOS: readonly (readonly [string, Scenario])[] = [
  ['capacity', capacity],
  ['fanout', fanout],
  ['multiplexed', multiplexed],
  ['latency', latency],
  ['workers', workers],
  ['large', large],
  ['fdlimit', fdLimit],
  ['auth', auth],
  ['scale', scale],
  ['tracing', tracing],
];
const NAMES = new Set([...SCENARIOS.map(([name]) => name), 'schema']);
const PRODUCERS = 4;
const ADDRESSES = 8;
const WINDOW_BYTES = 512 * 1024;

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string', multiple: true, default: [] },
    scenario: { type: 'string', multiple: true, default: [] },
    profile: { type: 'boolean', default: false },
    generators: { type: 'string', default: '4' },
    levels: { type: 'string' },
    out: { type: 'string' },
  },
});
const only = new Set(
  [...values.only, ...values.scenario]
    .flatMap((value) => value.split(','))
    .map((name) => name.trim())
    .filter(Boolean),
);
for (const name of only) {
  if (!NAMES.has(name)) {
    process.stderr.write(`bench: unknown scenario "${name}" (choose from ${[...NAMES].join(', ')})\n`);
    process.exit(2);
  }
}
const generators = Number(values.generators);
if (!Number.isInteger(generators) || generators < 1 || generators > 16) {
  process.stderr.write('bench: --generators must be 1..16\n');
  process.exit(2);
}
const levels = values.levels?.split(',').map((text) => Number(text.trim()));
if (levels !== undefined && !levels.every((n) => Number.isInteger(n) && n >= 1 && n <= 1_000_000)) {
  process.stderr.write('bench: --levels takes client counts 1..1,000,000, separated by commas\n');
  process.exit(2);
}
const partial = values.quick || only.size > 0;
const out = values.out ?? (partial ? undefined : join(import.meta.dir, 'RESULTS.md'));

const started = performance.now();
const say = (line: string) => {
  const seconds = Math.round((performance.now() - started) / 1000);
  process.stderr.write(
    `[${String(Math.floor(seconds / 60)).padStart(2, '0')}:${String(seconds % 60).padStart(2, '0')}] ${line}\n`,
  );
};

// Undo in reverse order of setup; run once, whether the run ends, fails or is interrupted.
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const undo of cleanups.reverse())
      await undo().catch((error: unknown) => say(`cleanup failed: ${String(error)}`));
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping everything`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  const startedAt = new Date();
  say(`starting PostgreSQL${process.env['BENCH_DATABASE_URL'] ? ' (BENCH_DATABASE_URL)' : ' (embedded)'}`);
  const db: BenchDatabase = await startDatabase(process.env);
  cleanups.push(() => db.stop());
  // Scenarios stop their own servers; this catches any an interruption left running.
  cleanups.push(stopAllTargets);
  const fleet: Fleet = await startFleet(generators);
  cleanups.push(() => fleet.stop());
  const notifier: Notifier = await startNotifier(db.url, PRODUCERS);
  cleanups.push(() => notifier.end());
  const profileDir = values.profile ? mkdtempSync(join(tmpdir(), 'pgws-bench-profile-')) : undefined;

  const context: Context = {
    rig: { db, fleet, notifier, addresses: ADDRESSES, windowBytes: WINDOW_BYTES },
    quick: values.quick,
    profileDir,
    say,
    only,
    levels,
  };
  const sections: Section[] = [];
  const targets: TargetCheck[] = [];
  const failures: string[] = [];
  for (const [name, scenario] of SCENARIOS) {
    const selected = only.size === 0 || only.has(name) || (name === 'fanout' && only.has('schema'));
    if (!selected) continue;
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
  const info = {
    command,
    startedAt,
    seconds,
    postgresVersion: db.version,
    embedded: db.embedded,
    generators,
    addresses: ADDRESSES,
    failures,
  };
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
