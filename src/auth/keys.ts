/**
 * `[auth]` key material, resolved once at startup from what `main.ts` hands over (the environment and a
 * file reader): a missing variable, a short secret or an unreadable JWKS file is a ConfigError naming the
 * key, so the process exits 2 before it listens. Nothing here prints or keeps a secret beyond the key.
 */
import { resolve } from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { ConfigError } from '../base/errors.ts';
import type { AuthConfig } from '../config/sections.ts';
import { algorithmsOf, type KeySource } from './tokens.ts';

/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash output, 256 bits. */
export const MIN_SECRET_BYTES = 32;

/** What resolving needs from the outside. */
export interface KeyContext {
  /** The config file's name, for messages. */
  readonly label: string;
  /** The config file's directory: `jwks_file` is relative to it. */
  readonly directory: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readText: (path: string) => Promise<string>;
}

/** The key source and a one-line description of it without any secret, for `bun run check` and the log. */
export interface ResolvedKeys {
  readonly keys: KeySource;
  readonly description: string;
}

/** Resolves `[auth]`'s one key source. */
export async function resolveKeys(auth: AuthConfig, context: KeyContext): Promise<ResolvedKeys> {
  const fail = (key: string, message: string): never => {
    throw new ConfigError(`${context.label}: auth.${key}: ${message}`);
  };
  if (auth.secretEnv !== undefined) {
    const value = context.env[auth.secretEnv];
    if (value === undefined || value === '')
      return fail('secret_env', `environment variable ${auth.secretEnv} is not set`);
    const secret = new TextEncoder().encode(value);
    if (secret.length < MIN_SECRET_BYTES) {
      fail(
        'secret_env',
        `the secret in ${auth.secretEnv} is ${secret.length} bytes; HS256 needs at least ${MIN_SECRET_BYTES}`,
      );
    }
    return {
      keys: { kind: 'secret', secret },
      description: `HS256 secret from ${auth.secretEnv} (${secret.length} bytes)`,
    };
  }
  if (auth.jwksFile !== undefined) {
    const path = resolve(context.directory, auth.jwksFile);
    let jwks: unknown;
    try {
      jwks = JSON.parse(await context.readText(path));
    } catch (error) {
      const reason = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
      return fail('jwks_file', `cannot read ${auth.jwksFile} as JSON: ${reason}`);
    }
    if (!isKeySet(jwks)) return fail('jwks_file', `${auth.jwksFile} is not a JWKS (an object with a "keys" array)`);
    const algorithms = algorithmsOf(jwks);
    if (algorithms.length === 0) return fail('jwks_file', `${auth.jwksFile} holds no public signing key`);
    return {
      keys: { kind: 'jwks', jwks },
      description: `JWKS file ${auth.jwksFile} (${jwks.keys.length} keys; ${algorithms.join(', ')})`,
    };
  }
  const url = new URL(auth.jwksUrl ?? fail('jwks_url', 'missing'));
  return { keys: { kind: 'remote', url }, description: `JWKS from ${url.href} (fetched on first use, cached)` };
}

function isKeySet(value: unknown): value is JSONWebKeySet {
  if (typeof value !== 'object' || value === null || !('keys' in value) || !Array.isArray(value.keys)) return false;
  return value.keys.every((key: unknown) => typeof key === 'object' && key !== null && 'kty' in key);
}
