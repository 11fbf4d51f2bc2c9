/**
 * `bun run asyncapi [--config FILE] [--host HOST:PORT] [--out FILE]`: prints the AsyncAPI 3.0 document of a
 * config, the same one `GET /asyncapi.json` serves, without starting anything. The server's host defaults to
 * the config's (`localhost` for `0.0.0.0`).
 */
import packageJson from '../../package.json' with { type: 'json' };
import { parseConfig } from '../config/load.ts';
import { describeAsyncApi } from '../describe/asyncapi.ts';
import { parseArguments, readConfigFile, runTool } from './entry.ts';

async function main(): Promise<void> {
  const { values } = parseArguments({
    config: { type: 'string', default: 'channels.toml' },
    host: { type: 'string' },
    out: { type: 'string' },
  });
  const { file, text } = await readConfigFile(values.config);
  const config = await parseConfig(text, file);
  const { host, port } = config.server;
  const listening = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const document = describeAsyncApi({
    config,
    host: values.host ?? `${listening}:${port}`,
    version: packageJson.version,
  });
  const output = `${JSON.stringify(document, null, 2)}\n`;
  if (values.out === undefined) process.stdout.write(output);
  else await Bun.write(values.out, output);
}

if (import.meta.main) runTool(main);
