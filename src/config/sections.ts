/**
 * The single source of every config key: one valibot entry per key (type, range, default). The `Config`
 * type is inferred from these schemas and the snake_case → camelCase copy is generic, so adding a key is
 * one entry here plus its use, its line in channels.toml, its README row and its test.
 */
import * as v from 'valibot';

const int = (min: number, max: number) => v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));

/** `[server]`: the HTTP/WebSocket side. */
export const ServerSection = v.strictObject({
  host: v.optional(v.pipe(v.string(), v.nonEmpty()), '0.0.0.0'),
  port: v.optional(int(0, 65535), 8080),
  unknown_channels: v.optional(v.picklist(['raw', 'reject']), 'raw'),
  max_connections: v.optional(int(1, 1_000_000), 50_000),
  max_channels: v.optional(int(1, 100_000), 1_000),
  // 65536: a multiplexed publish of a 7999-byte payload, escaped in JSON, or a large token, must fit.
  max_message_bytes: v.optional(int(0, 16 * 1024 * 1024), 65_536),
  // At least 8000: every direct NOTIFY payload fits, so only fetched (pgws.notify) payloads are measured.
  // Down to 1: a value under 8000 keeps every payload within what NOTIFY itself carries.
  max_payload_bytes: v.optional(int(1, 256 * 1024 * 1024), 1024 * 1024),
  slow_consumer_bytes: v.optional(int(64 * 1024, 1024 * 1024 * 1024), 1024 * 1024),
  idle_timeout: v.optional(int(8, 960), 60),
  workers: v.optional(int(1, 64), 1),
  // Bytes of deliveries a worker may leave unread on its IPC channel before the primary kills it.
  worker_backlog_bytes: v.optional(int(64 * 1024, 4 * 1024 * 1024 * 1024), 64 * 1024 * 1024),
  publish_rate: v.optional(int(1, 100_000), 20),
  max_subscriptions: v.optional(int(1, 100_000), 100),
  allowed_origins: v.optional(v.array(v.pipe(v.string(), v.nonEmpty())), []),
});

/** `[database]`: the LISTEN connection. */
export const DatabaseSection = v.strictObject({
  url: v.optional(v.pipe(v.string(), v.nonEmpty())),
  reconnect_min_ms: v.optional(int(10, 60_000), 100),
  reconnect_max_ms: v.optional(int(100, 600_000), 10_000),
  canary_interval_ms: v.optional(int(100, 600_000), 5_000),
  large_payload_ttl: v.optional(int(1, 86_400), 60),
  // How the bridge learns of new rows of durable channels: pgws.send's NOTIFY, or the logical replication
  // of pgws.messages (no NOTIFY, so writers never queue on its cluster-wide commit lock).
  ingest: v.optional(v.picklist(['notify', 'replication']), 'notify'),
});

/**
 * `[auth]`: JWTs checked with jose. Exactly one key source; the checks that need the environment or the
 * file system (an unset variable, a short secret, an unreadable file) run in `auth/keys.ts` at startup.
 */
export const AuthSection = v.strictObject({
  secret_env: v.optional(
    v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name')),
  ),
  jwks_file: v.optional(v.pipe(v.string(), v.nonEmpty())),
  jwks_url: v.optional(v.pipe(v.string(), v.url('expected an absolute URL'))),
  audience: v.optional(v.union([v.pipe(v.string(), v.nonEmpty()), v.pipe(v.array(v.string()), v.minLength(1))])),
  issuer: v.optional(v.pipe(v.string(), v.nonEmpty())),
  query_token: v.optional(v.boolean(), false),
  // 0: no limit. Per instance, every worker together (the primary counts), sockets and streams alike.
  max_connections_per_subject: v.optional(int(0, 1_000_000), 0),
});

// Not v.record: it skips keys such as "constructor" and "__proto__", which are legal channel names and
// must reach the unknown-keyword check inside a schema table.
/** Whether a parsed TOML value is a table (TOML dates are objects too, and are not). */
export const isTable = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
const Table = v.custom<Record<string, unknown>>(
  isTable,
  (issue) => `Invalid type: Expected a table but received ${v._stringify(issue.input)}`,
);

/** `[channels.NAME]`: one declared channel. `schema` is loaded separately (inline table or module path). */
export const ChannelSection = v.strictObject({
  description: v.optional(v.string()),
  history: v.optional(int(0, 1_000_000), 0),
  publish: v.optional(v.boolean(), false),
  public: v.optional(v.boolean(), false),
  schema: v.optional(v.union([v.pipe(v.string(), v.nonEmpty()), Table])),
  // docs/PROTOCOL.md "Durable channels": messages are rows of pgws.messages, numbered by the database.
  durable: v.optional(v.boolean(), false),
  // Rows kept per durable channel: the newest `retain`, and none older than `retain_seconds`.
  retain: v.optional(int(1, 100_000_000), 10_000),
  retain_seconds: v.optional(int(1, 10 * 365 * 86_400), 86_400),
});

/** The whole file. Channel tables are checked one by one, so an error names the channel. */
export const ConfigFile = v.strictObject({
  server: v.optional(ServerSection, {}),
  database: v.optional(DatabaseSection, {}),
  auth: v.optional(AuthSection),
  channels: v.optional(Table, {}),
});

type Camel<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<Camel<Tail>>}` : S;

/** A section as the code sees it: camelCase keys, read-only. */
export type Camelized<T> = { readonly [K in keyof T as K extends string ? Camel<K> : K]: T[K] };

/** Copies a parsed section with its keys in camelCase (`max_connections` → `maxConnections`). */
export function camelize<T extends Record<string, unknown>>(section: T): Camelized<T> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(section)) {
    out[key.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase())] = value;
  }
  return out as Camelized<T>;
}

/** The `[server]` settings in force. */
export type ServerConfig = Camelized<v.InferOutput<typeof ServerSection>>;
/** The `[auth]` settings, when the section is present. */
export type AuthConfig = Camelized<v.InferOutput<typeof AuthSection>>;
/** The `[database]` settings in force. */
export type DatabaseConfig = Camelized<v.InferOutput<typeof DatabaseSection>>;
/** The plain keys of a `[channels.NAME]` table (its schema is loaded into {@link ChannelConfig} instead). */
export type ChannelSettings = Camelized<Omit<v.InferOutput<typeof ChannelSection>, 'schema'>>;
