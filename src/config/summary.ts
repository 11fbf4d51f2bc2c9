/**
 * What `bun run check` prints: the channels a config would serve and the settings in force, in a form
 * meant for people (the machine-readable version is GET /channels).
 */
import { type Config, formatPath } from './load.ts';

/** A short, stable text summary of a validated config; `auth` describes the resolved keys, never a secret. */
export function describeConfig(config: Config, auth?: string): string {
  const { server } = config;
  const lines = [
    `${config.file}: OK`,
    `server: ${server.host}:${server.port}, unknown channels ${server.unknownChannels === 'raw' ? 'pass through raw' : 'are rejected'}, ${server.workers} worker(s)`,
    `database: ${config.database.url === undefined ? 'embedded development PostgreSQL (no url set)' : 'url set'}${config.database.ingest === 'replication' ? ', durable channels read by logical replication' : ''}`,
    `auth: ${describeAuth(config, auth)}`,
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
      ...(channel.public && config.auth !== undefined ? ['public'] : []),
      ...(channel.history > 0 ? [`history ${channel.history}`] : []),
      ...(channel.publish ? ['clients may publish'] : []),
    ];
    const traits = [schema, ...extras].join(', ');
    lines.push(`  ${formatPath([channel.name])}: ${traits}${description}`);
  }
  return `${lines.join('\n')}\n`;
}

function describeAuth(config: Config, keys: string | undefined): string {
  const { auth, server } = config;
  if (auth === undefined) return 'off: anyone may subscribe ([auth] not set)';
  const parts = [keys ?? 'keys not resolved'];
  if (auth.audience !== undefined) parts.push(`audience ${[auth.audience].flat().join(', ')}`);
  if (auth.issuer !== undefined) parts.push(`issuer ${auth.issuer}`);
  parts.push(auth.queryToken ? 'tokens also accepted in ?token= (query_token = true)' : 'no tokens in URLs');
  if (auth.maxConnectionsPerSubject > 0) parts.push(`at most ${auth.maxConnectionsPerSubject} connections per subject`);
  const origins = server.allowedOrigins;
  parts.push(origins.length === 0 ? 'any Origin' : `Origin one of ${origins.join(', ')}`);
  return parts.join('; ');
}
