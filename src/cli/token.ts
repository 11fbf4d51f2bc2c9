/**
 * `bun run token --sub alice --channels 'orders:r,chat*:rw' --ttl 1h [--config FILE]`: mints an HS256
 * token with the secret named by `[auth] secret_env`, for development and tests. Production tokens come
 * from your identity provider or application; this tool only saves writing one by hand.
 *
 * A command-line entry point like `main.ts`: it reads argv, the environment and the config file.
 */
import { basename, dirname } from 'node:path';
import { SignJWT } from 'jose';
import { resolveKeys } from '../auth/keys.ts';
import { ConfigError } from '../base/errors.ts';
import { parseConfig } from '../config/load.ts';
import { parseArguments, readConfigFile, runTool } from './entry.ts';

const UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90`, `90s`, `15m`, `1h`, `7d` → seconds. */
export function parseTtl(text: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text);
  if (match === null) throw new ConfigError(`--ttl: expected a duration such as 90s, 15m, 1h or 7d, got "${text}"`);
  return Number(match[1]) * (UNITS[match[2] || 's'] ?? 1);
}

/** `orders:r,chat*:rw` → `{ orders: 'r', 'chat*': 'rw' }`; the mode follows the last colon of each entry. */
export function parseChannels(text: string): Record<string, 'r' | 'w' | 'rw'> {
  const grants: Record<string, 'r' | 'w' | 'rw'> = {};
  for (const entry of text.split(',').filter((part) => part !== '')) {
    const colon = entry.lastIndexOf(':');
    const mode = entry.slice(colon + 1);
    if (colon <= 0 || (mode !== 'r' && mode !== 'w' && mode !== 'rw')) {
      throw new ConfigError(`--channels: expected NAME:r, NAME:w or NAME:rw, got "${entry}"`);
    }
    Object.defineProperty(grants, entry.slice(0, colon), { value: mode, enumerable: true, writable: true });
  }
  return grants;
}

async function main(): Promise<void> {
  const { values } = parseArguments({
    config: { type: 'string', default: 'channels.toml' },
    sub: { type: 'string' },
    channels: { type: 'string', default: '' },
    ttl: { type: 'string', default: '1h' },
  });
  if (values.sub === undefined || values.sub === '') throw new ConfigError("--sub: the token's subject is required");
  const { file, text } = await readConfigFile(values.config);
  const config = await parseConfig(text, file);
  if (config.auth?.secretEnv === undefined) {
    throw new ConfigError(`${values.config}: bun run token signs with [auth] secret_env, which is not set`);
  }
  const { keys } = await resolveKeys(config.auth, {
    label: basename(file),
    directory: dirname(file),
    env: process.env,
    readText: (path) => Bun.file(path).text(),
  });
  if (keys.kind !== 'secret') throw new ConfigError('bun run token signs with [auth] secret_env only');
  let jwt = new SignJWT({ channels: parseChannels(values.channels) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(values.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + parseTtl(values.ttl));
  if (config.auth.issuer !== undefined) jwt = jwt.setIssuer(config.auth.issuer);
  if (config.auth.audience !== undefined) jwt = jwt.setAudience([config.auth.audience].flat());
  process.stdout.write(`${await jwt.sign(keys.secret)}\n`);
}

if (import.meta.main) runTool(main);
