/**
 * What a token allows: the `channels` claim, a map from a channel name or pattern (`*` matches any run of
 * characters) to `"r"`, `"w"` or `"rw"`. Compiled once per token into exact names and anchored patterns,
 * so a permission check is a map lookup plus at most one test per pattern. Anything not granted is denied.
 */

/** A read (subscribe) or a write (publish). */
export type Mode = 'r' | 'w';

/** A token's channel grants, compiled. */
export interface Grants {
  permits(channel: string, mode: Mode): boolean;
}

/** The grant values a `channels` claim may hold. */
export const GRANT_VALUES = ['r', 'w', 'rw'] as const;

/** Nothing granted: an anonymous socket, or a token without a `channels` claim. */
export const NO_GRANTS: Grants = { permits: () => false };

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Compiles a validated `channels` claim. Patterns and exact names granting several modes combine. */
export function compileGrants(claim: Readonly<Record<string, (typeof GRANT_VALUES)[number]>>): Grants {
  const exact = new Map<string, string>();
  const patterns: Array<{ test: RegExp; modes: string }> = [];
  for (const [key, modes] of Object.entries(claim)) {
    if (!key.includes('*')) exact.set(key, (exact.get(key) ?? '') + modes);
    else patterns.push({ test: new RegExp(`^${key.split('*').map(literal).join('.*')}$`, 's'), modes });
  }
  return {
    permits(channel, mode) {
      if (exact.get(channel)?.includes(mode)) return true;
      return patterns.some((pattern) => pattern.modes.includes(mode) && pattern.test.test(channel));
    },
  };
}
