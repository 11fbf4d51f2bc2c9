/**
 * channels.toml: TOML text → smol-toml → a valibot schema of its own → a typed, readonly {@link Config}.
 *
 * Parsed once at the boundary; nothing past here sees `unknown`. Every error is a {@link ConfigError}
 * whose message names the file and either the TOML line:column or the key path, e.g.
 * `channels.toml: channels.orders.schema.properties.id: unknown keyword "frobnicate"`.
 */
import { basename, dirname, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import * as v from 'valibot';
import { ConfigError } from '../base/errors.ts';
import { checkChannelName } from '../base/name.ts';
import { buildInlineSchema, SchemaError } from '../schema/compile.ts';
import {
  type AuthConfig,
  AuthSection,
  ChannelSection,
  type ChannelSettings,
  ConfigFile,
  camelize,
  type DatabaseConfig,
  DatabaseSection,
  isTable,
  type ServerConfig,
  ServerSection,
} from './sections.ts';

/** Any valibot schema: the payload contract of one channel. */
export type PayloadSchema = v.GenericSchema<unknown, unknown>;

/** Where a channel's schema came from: published at /channels, and shown by `bun run check`. */
export type SchemaSource =
  | { readonly kind: 'inline'; readonly definition: Readonly<Record<string, unknown>> }
  | { readonly kind: 'module'; readonly path: string; readonly exportName: string };

/** One declared channel: its settings plus the schema loaded from `schema`. */
export type ChannelConfig = ChannelSettings & {
  readonly name: string;
  readonly schema: PayloadSchema | undefined;
  readonly source: SchemaSource | undefined;
};

/** The whole, validated configuration. Every key and default is in `sections.ts`. */
export interface Config {
  readonly file: string;
  readonly server: ServerConfig;
  readonly database: DatabaseConfig;
  /** Absent without an `[auth]` section: then anyone may subscribe, as without authorization. */
  readonly auth: AuthConfig | undefined;
  readonly channels: ReadonlyMap<string, ChannelConfig>;
}

// valibot's strictObject also skips "constructor" and friends, so unknown keys are found here first.
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  top: Object.keys(ConfigFile.entries),
  server: Object.keys(ServerSection.entries),
  database: Object.keys(DatabaseSection.entries),
  auth: Object.keys(AuthSection.entries),
  channel: Object.keys(ChannelSection.entries),
};

function unknownKey(label: string, table: Record<string, unknown>, section: string, path: readonly PathKey[]): void {
  const allowed = ALLOWED[section] ?? [];
  const key = Object.keys(table).find((name) => !allowed.includes(name));
  if (key !== undefined) {
    throw new ConfigError(`${label}: ${formatPath([...path, key])}: unknown key (allowed here: ${allowed.join(', ')})`);
  }
}

/** Loads a config from its text. `file` is used in messages and to resolve schema modules. */
export async function parseConfig(text: string, file: string): Promise<Config> {
  const label = basename(file);
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (error) {
    if (error instanceof TomlError) {
      const first = error.message.split('\n')[0] ?? error.message;
      throw new ConfigError(`${label}:${error.line}:${error.column}: ${first}`, { cause: error });
    }
    throw error;
  }
  const fail = (path: readonly PathKey[], issue: v.BaseIssue<unknown> | undefined): never => {
    throw new ConfigError(`${label}: ${formatPath([...path, ...issuePath(issue)])}: ${issue?.message ?? 'invalid'}`);
  };
  const top = raw as Record<string, unknown>;
  unknownKey(label, top, 'top', []);
  for (const section of ['server', 'database', 'auth'] as const)
    if (isTable(top[section])) unknownKey(label, top[section], section, [section]);
  const table = top['channels'];
  if (isTable(table))
    for (const name of Object.keys(table))
      if (isTable(table[name])) unknownKey(label, table[name], 'channel', ['channels', name]);
  const result = v.safeParse(ConfigFile, raw);
  if (!result.success) return fail([], result.issues[0]);
  const { server, database } = result.output;
  const channels: Array<[string, v.InferOutput<typeof ChannelSection>, Record<string, unknown>]> = [];
  for (const name of Object.keys(result.output.channels)) {
    const raw = result.output.channels[name];
    const section = v.safeParse(ChannelSection, raw);
    if (!section.success) return fail(['channels', name], section.issues[0]);
    channels.push([name, section.output, raw as Record<string, unknown>]);
  }
  if (database.reconnect_min_ms > database.reconnect_max_ms) {
    throw new ConfigError(
      `${label}: database.reconnect_min_ms: must not exceed reconnect_max_ms (${database.reconnect_max_ms})`,
    );
  }
  const declared = new Map<string, ChannelConfig>();
  for (const [name, section, raw] of channels) {
    const at = (rest: readonly PathKey[]) => `${label}: ${formatPath(['channels', name, ...rest])}`;
    const checked = checkChannelName(name);
    if (!checked.ok) throw new ConfigError(`${at([])}: ${checked.reason}`);
    checkDurable(section, raw, at);
    const loaded = await loadSchema(section.schema, dirname(resolve(file)), at);
    const { schema: _, ...settings } = section;
    declared.set(name, { ...camelize(settings), name, ...loaded });
  }
  return {
    file,
    server: camelize(server),
    database: camelize(database),
    auth: result.output.auth === undefined ? undefined : checkAuth(label, camelize(result.output.auth)),
    channels: declared,
  };
}

/**
 * `retain` and `retain_seconds` mean something only on a durable channel, and `history` nothing on one (its
 * messages are rows): a config that sets them so is wrong, and says which key to change.
 */
function checkDurable(
  section: v.InferOutput<typeof ChannelSection>,
  raw: Record<string, unknown>,
  at: (rest: readonly PathKey[]) => string,
): void {
  if (section.durable) {
    if (section.history > 0) {
      throw new ConfigError(
        `${at(['history'])}: a durable channel keeps its messages in the database; use retain and retain_seconds instead of history`,
      );
    }
    return;
  }
  for (const key of ['retain', 'retain_seconds']) {
    if (raw[key] !== undefined)
      throw new ConfigError(`${at([key])}: applies only to durable channels (set durable = true)`);
  }
}

/** One key source, named: the rest of `[auth]` is checked against the environment at startup. */
function checkAuth(label: string, auth: AuthConfig): AuthConfig {
  const sources = (['secretEnv', 'jwksFile', 'jwksUrl'] as const).filter((key) => auth[key] !== undefined);
  if (sources.length === 0) {
    throw new ConfigError(`${label}: auth: no key source: set one of secret_env, jwks_file or jwks_url`);
  }
  if (sources.length > 1) {
    throw new ConfigError(`${label}: auth: set exactly one of secret_env, jwks_file or jwks_url, not several`);
  }
  return auth;
}

type PathKey = string | number;
type Loaded = Pick<ChannelConfig, 'schema' | 'source'>;

async function loadSchema(
  schema: string | Record<string, unknown> | undefined,
  baseDir: string,
  at: (rest: readonly PathKey[]) => string,
): Promise<Loaded> {
  if (schema === undefined) return { schema: undefined, source: undefined };
  if (typeof schema !== 'string') {
    try {
      return { schema: buildInlineSchema(schema), source: { kind: 'inline', definition: schema } };
    } catch (error) {
      if (!(error instanceof SchemaError)) throw error;
      throw new ConfigError(`${at(['schema', ...error.path])}: ${error.reason}`, { cause: error });
    }
  }
  const hash = schema.lastIndexOf('#');
  const spec = hash === -1 ? schema : schema.slice(0, hash);
  const exportName = hash === -1 ? 'default' : schema.slice(hash + 1);
  const path = resolve(baseDir, spec);
  let module: Record<string, unknown>;
  try {
    module = await import(path);
  } catch (error) {
    // Bun appends "imported from <this file>", which would point the user at our code, not theirs.
    const reason = (error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error)).replace(
      / imported from .*$/,
      '',
    );
    throw new ConfigError(`${at(['schema'])}: cannot load module "${spec}": ${reason}`, { cause: error });
  }
  const exported = Object.hasOwn(module, exportName) ? module[exportName] : undefined;
  if (exported === undefined)
    throw new ConfigError(`${at(['schema'])}: module "${spec}" has no export "${exportName}"`);
  if (!isValibotSchema(exported)) {
    throw new ConfigError(`${at(['schema'])}: export "${exportName}" of "${spec}" is not a valibot schema`);
  }
  return { schema: exported, source: { kind: 'module', path, exportName } };
}

function isValibotSchema(value: unknown): value is PayloadSchema {
  return typeof value === 'object' && value !== null && 'kind' in value && value.kind === 'schema' && '~run' in value;
}

function issuePath(issue: v.BaseIssue<unknown> | undefined): PathKey[] {
  return (issue?.path ?? []).map((item) => {
    const key: unknown = item.key;
    return typeof key === 'number' ? key : String(key);
  });
}

/** TOML-style dotted path: bare keys as they are, anything else quoted (`channels."Order Events"`). */
export function formatPath(path: readonly PathKey[]): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((key) => (typeof key === 'number' || /^[A-Za-z0-9_-]+$/.test(key) ? String(key) : JSON.stringify(key)))
    .join('.');
}
