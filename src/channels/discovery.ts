/**
 * GET /channels: what each declared channel delivers, as JSON Schema, so a consumer in any language
 * can generate types without reading the server's config.
 *
 * Inline schemas are already JSON Schema and are published as written (a round trip through valibot
 * would lose keywords such as `format` details). Module schemas are converted with
 * `@valibot/to-json-schema`; parts it cannot express (transforms, custom checks) are left out rather
 * than failing, and the document says so with `x-partial`.
 */
import { toJsonSchema } from '@valibot/to-json-schema';
import type { Config } from '../config/load.ts';

const DIALECT = 'https://json-schema.org/draft/2020-12/schema';

/** One channel as published. */
export interface ChannelDescription {
  readonly name: string;
  readonly description: string | null;
  /** Whether multiplexed clients may publish (`[channels.NAME] publish`). */
  readonly publish: boolean;
  /** Messages kept for resume. */
  readonly history: number;
  /** Readable without a token when `[auth]` is on. */
  readonly public: boolean;
  /** Whether messages are rows of the database (`[channels.NAME] durable`), kept for resume after a restart. */
  readonly durable: boolean;
  /** On durable channels only: the newest messages kept (`retain`). */
  readonly retain?: number;
  /** On durable channels only: the age in seconds past which messages go (`retain_seconds`). */
  readonly retain_seconds?: number;
  /** Kept for existing readers: `input` for inline schemas, `output` for module schemas. */
  readonly schema: Record<string, unknown> | null;
  /** What a payload (a NOTIFY, or a publish) must look like. */
  readonly input: Record<string, unknown> | null;
  /** What subscribers receive: defaults filled, transforms applied. Consumer types come from this. */
  readonly output: Record<string, unknown> | null;
}

/** The whole /channels document. */
export interface ChannelsDocument {
  readonly unknown_channels: 'raw' | 'reject';
  readonly channels: readonly ChannelDescription[];
}

/** Builds the document once at startup; it only changes with the config. */
export function describeChannels(config: Pick<Config, 'channels' | 'server'>): ChannelsDocument {
  const channels = [...config.channels.values()].map((channel): ChannelDescription => {
    const source = channel.source;
    const base = {
      name: channel.name,
      description: channel.description ?? null,
      publish: channel.publish,
      history: channel.history,
      public: channel.public,
      durable: channel.durable,
      // Retention means nothing on a channel that keeps no rows: absent there, as in channels.toml.
      ...(channel.durable ? { retain: channel.retain, retain_seconds: channel.retainSeconds } : {}),
    };
    if (source?.kind === 'inline') {
      const input = { $schema: DIALECT, ...source.definition };
      return { ...base, schema: input, input, output: withDefaultsRequired(input) };
    }
    if (source?.kind === 'module' && channel.schema !== undefined) {
      const output = fromModule(channel.schema, 'output');
      return { ...base, schema: output, input: fromModule(channel.schema, 'input'), output };
    }
    return { ...base, schema: null, input: null, output: null };
  });
  return { unknown_channels: config.server.unknownChannels, channels };
}

function fromModule(schema: Parameters<typeof toJsonSchema>[0], typeMode: 'input' | 'output'): Record<string, unknown> {
  let partial = false;
  const converted = toJsonSchema(schema, {
    errorMode: 'ignore',
    target: 'draft-2020-12',
    typeMode,
    overrideAction: ({ jsonSchema, valibotAction }) => {
      if (valibotAction.kind === 'transformation' || valibotAction.type === 'check') partial = true;
      return jsonSchema;
    },
  });
  return partial ? { ...converted, 'x-partial': true } : { ...converted };
}

/**
 * An inline schema's output shape: our schemas fill defaults in, so a property with a `default` is always
 * present in what subscribers receive, and is required there even when the input may omit it.
 */
function withDefaultsRequired(schema: unknown): Record<string, unknown> {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return schema as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    const nested = key === 'properties' || key === 'items' || key === 'additionalProperties' || key === 'anyOf';
    out[key] = nested ? mapSchemas(value) : value;
  }
  const properties = out['properties'];
  if (typeof properties === 'object' && properties !== null) {
    const filled = Object.entries(properties)
      .filter(([, property]) => typeof property === 'object' && property !== null && 'default' in property)
      .map(([name]) => name);
    const required = Array.isArray(out['required']) ? (out['required'] as string[]) : [];
    if (filled.length > 0) out['required'] = [...new Set([...required, ...filled])];
  }
  return out;
}

function mapSchemas(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withDefaultsRequired);
  if (typeof value !== 'object' || value === null) return value;
  if ('type' in value || 'properties' in value || 'anyOf' in value || 'enum' in value || 'const' in value) {
    return withDefaultsRequired(value);
  }
  return Object.fromEntries(Object.entries(value).map(([key, nested]) => [key, withDefaultsRequired(nested)]));
}
