/**
 * The two bridges the benchmark starts: ours (`bun src/main.ts --config <generated toml>`, env
 * DATABASE_URL, PORT, LOG_LEVEL=warn) and the bare one (bench/bare.ts). Our config sets only what a
 * scenario asks for; every other key keeps its default ("limits at defaults").
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/db/embedded.ts';
import { launch, type Target } from './target.ts';

/** The declared channel with an inline schema: "every feature on". Other channels pass through raw. */
export const SCHEMA_CHANNEL = 'bench_schema';

/**
 * A declared channel whose inline schema is the benchmark payload's own shape (bench/protocol.ts), as
 * strict as it can be. `keyed` adds the integer `k` the filter cases match on, between `seq` and `t`:
 * a schema channel re-serialises the payload in the schema's property order, which must stay the
 * payload's for the generators' parser. `history` keeps that many messages for resume.
 */
export function schemaChannelToml(
  name: string,
  options: { readonly keyed?: boolean; readonly history?: number; readonly description?: string } = {},
): string {
  const table = `channels.${name}`;
  const property = (key: string, lines: string) => `\n[${table}.schema.properties.${key}]\n${lines}`;
  return [
    `\n[${table}]`,
    `description = ${JSON.stringify(options.description ?? 'Benchmark payloads, checked against an inline schema')}`,
    ...(options.history === undefined ? [] : [`history = ${options.history}`]),
    `\n[${table}.schema]`,
    'type = "object"',
    `required = ["r", "seq", ${options.keyed ? '"k", ' : ''}"t", "p"]`,
    'additionalProperties = false',
    property('r', 'type = "integer"\nminimum = 0'),
    property('seq', 'type = "integer"\nminimum = 0'),
    ...(options.keyed ? [property('k', 'type = "integer"\nminimum = 0')] : []),
    property('t', 'type = "number"'),
    property('p', 'type = "string"\nmaxLength = 8000'),
  ].join('\n');
}

const SCHEMA_TOML = schemaChannelToml(SCHEMA_CHANNEL);

/** Options for our server; `server` adds `[server]` keys. */
export interface OursOptions {
  readonly databaseUrl: string;
  readonly server?: Readonly<Record<string, number | string>>;
  readonly label?: string;
  /** Write a CPU profile (`bun --cpu-prof`, .cpuprofile and .md) into this directory at exit. */
  readonly profileDir?: string | undefined;
  /** Return after this many healthy /healthz answers in a row (default 20). */
  readonly healthyInARow?: number;
  /** More `[channels.NAME]` tables (see {@link schemaChannelToml}). */
  readonly channelsToml?: string;
}

/** Starts our server and returns it once healthy; throws with its stderr if it exits first. */
export async function startOurs(options: OursOptions): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'pgws-bench-ours-'));
  const port = await freePort('0.0.0.0');
  const extra = Object.entries(options.server ?? {}).map(([key, value]) => `${key} = ${JSON.stringify(value)}`);
  const file = join(dir, 'channels.toml');
  writeFileSync(
    file,
    ['[server]', 'host = "0.0.0.0"', `port = ${port}`, ...extra, SCHEMA_TOML, options.channelsToml ?? ''].join('\n'),
  );
  const profile =
    options.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-md', `--cpu-prof-dir=${options.profileDir}`];
  return launch({
    label: options.label ?? 'ours',
    argv: [process.execPath, ...profile, 'src/main.ts', '--config', file],
    env: { DATABASE_URL: options.databaseUrl, LOG_LEVEL: 'warn', HOST: '' },
    dir,
    port,
    healthyInARow: options.healthyInARow,
    metrics: true,
  });
}

/** Starts the bare bridge as `processes` processes on one port, each with its own LISTEN. */
export async function startBare(databaseUrl: string, processes = 1): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'pgws-bench-bare-'));
  const argv = [process.execPath, join(import.meta.dir, 'bare.ts')];
  return launch({
    label: processes === 1 ? 'bare' : `bare, ${processes} processes`,
    argv,
    env: { DATABASE_URL: databaseUrl, HOST: '0.0.0.0', PROCESSES: String(processes) },
    dir,
    port: await freePort('0.0.0.0'),
    metrics: false,
  });
}
