/**
 * GET /channels: what each declared channel delivers, as JSON Schema, so a consumer in any language
 * can generate types without reading the server's config, and what a client may do there (publish,
 * resume from history, read without a token), so a UI such as the console offers only what works.
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
  readonly schema: Record<string, unknown> | null;
  /** Multiplexed clients may publish here (`[channels.NAME] publish`); with `[auth]` a `w` grant is needed too. */
  readonly publish: boolean;
  /** Messages kept for resume (`[channels.NAME] history`); 0 keeps none, so a resume that missed messages is not recovered. */
  readonly history: number;
  /** Readable without a token when `[auth]` is on (`[channels.NAME] public`). */
  readonly public: boolean;
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
    let schema: Record<string, unknown> | null = null;
    if (source?.kind === 'inline') schema = { $schema: DIALECT, ...source.definition };
    if (source?.kind === 'module' && channel.schema !== undefined) schema = fromModule(channel.schema);
    return {
      name: channel.name,
      description: channel.description ?? null,
      schema,
      publish: channel.publish,
      history: channel.history,
      public: channel.public,
    };
  });
  return { unknown_channels: config.server.unknownChannels, channels };
}

function fromModule(schema: Parameters<typeof toJsonSchema>[0]): Record<string, unknown> {
  let partial = false;
  const converted = toJsonSchema(schema, {
    errorMode: 'ignore',
    target: 'draft-2020-12',
    typeMode: 'output',
    overrideAction: ({ jsonSchema, valibotAction }) => {
      if (valibotAction.kind === 'transformation' || valibotAction.type === 'check') partial = true;
      return jsonSchema;
    },
  });
  return partial ? { ...converted, 'x-partial': true } : { ...converted };
}
