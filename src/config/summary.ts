/**
 * What `bun run check` prints: the channels a config would serve and the settings in force, in a form
 * meant for people (the machine-readable version is GET /channels).
 */
import { type Config, formatPath } from './load.ts';

/** A short, stable text summary of a validated config. */
export function describeConfig(config: Config): string {
  const { server } = config;
  const lines = [
    `${config.file}: OK`,
    `server: ${server.host}:${server.port}, unknown channels ${server.unknownChannels === 'raw' ? 'pass through raw' : 'are rejected'}, ${server.workers} worker(s)`,
    `database: ${config.database.url === undefined ? 'embedded development PostgreSQL (no url set)' : 'url set'}`,
    `channels (${config.channels.size}):`,
  ];
  for (const channel of config.channels.values()) {
    const source = channel.source;
    const schema =
      source === undefined
        ? 'raw text'
        : source.kind === 'inline'
          ? 'inline schema'
          : `schema module ${source.path}#${source.exportName}`;
    const description = channel.description === undefined ? '' : ` - ${channel.description}`;
    const extras = [
      ...(channel.history > 0 ? [`history ${channel.history}`] : []),
      ...(channel.publish ? ['clients may publish'] : []),
    ];
    const traits = [schema, ...extras].join(', ');
    lines.push(`  ${formatPath([channel.name])}: ${traits}${description}`);
  }
  return `${lines.join('\n')}\n`;
}
