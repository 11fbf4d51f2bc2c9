/**
 * Channel names: how a URL path becomes the exact first argument of `pg_notify(channel, payload)`.
 *
 * PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes, so a longer name would LISTEN on a
 * different (truncated) channel and silently never match. We refuse such names instead.
 */
export const MAX_CHANNEL_BYTES = 63;

/**
 * The bridge's own readiness-probe channels start with this (one per process, see `bridge.ts`); no client
 * may name one, so a probe is never delivered to a client nor counted as a client's channel.
 */
export const PROBE_PREFIX = 'pgws.canary.';

/**
 * The channel `pgws.disconnect`, `pgws.revoke` and `pgws.unrevoke` notify (`bun run sql` installs them):
 * every bridge with `[auth]` LISTENs it. No client may name it, so none learns who was cut off.
 */
export const CONTROL_CHANNEL = 'pgws.control';

/** Whether `channel` is one of the bridge's probe channels (this process's or a worker's). */
export const isProbeChannel = (channel: string): boolean => channel.startsWith(PROBE_PREFIX);

const encoder = new TextEncoder();

/** The result of reading a channel name; `reason` is safe to show to the client. */
export type ChannelName = { ok: true; name: string } | { ok: false; reason: string };

/** Checks a literal channel name (already decoded): 1 to 63 bytes of UTF-8, no NUL. */
export function checkChannelName(name: string): ChannelName {
  if (name.length === 0) return { ok: false, reason: 'channel name is empty' };
  // PG: identifiers cannot contain NUL; lone surrogates cannot be sent as UTF-8 either.
  if (name.includes('\0')) return { ok: false, reason: 'channel name contains NUL' };
  if (!name.isWellFormed()) return { ok: false, reason: 'channel name is not valid Unicode' };
  if (isProbeChannel(name)) {
    return { ok: false, reason: `channel names starting with "${PROBE_PREFIX}" are reserved for the bridge's probes` };
  }
  if (name === CONTROL_CHANNEL) {
    return { ok: false, reason: `the channel "${CONTROL_CHANNEL}" is reserved for the bridge's control messages` };
  }
  const bytes = encoder.encode(name).length;
  if (bytes > MAX_CHANNEL_BYTES) {
    return {
      ok: false,
      reason: `channel name is ${bytes} bytes in UTF-8; PostgreSQL allows at most ${MAX_CHANNEL_BYTES}`,
    };
  }
  return { ok: true, name };
}

/**
 * Reads the channel from a request path such as `/Order%20Events`: one percent-decoded segment,
 * taken literally and case-sensitively. A raw `/` inside the name must be sent as `%2F`.
 */
export function channelFromPath(pathname: string): ChannelName {
  const segment = pathname.startsWith('/') ? pathname.slice(1) : pathname;
  if (segment.includes('/')) {
    return { ok: false, reason: 'the path must be a single segment: percent-encode "/" in a channel name as %2F' };
  }
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return { ok: false, reason: 'the path is not valid percent-encoded UTF-8' };
  }
  return checkChannelName(name);
}
