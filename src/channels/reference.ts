/**
 * Large payloads: what a reference is. `pgws.notify` (src/db/script.ts) stores a payload that NOTIFY
 * cannot carry in `pgws.payloads` and notifies `MARKER + id` on the same channel instead; the bridge
 * fetches the row once per notification and treats its payload like any other.
 *
 * The marker starts with U+001E (RECORD SEPARATOR): JSON cannot start with a raw control character and
 * text practically never does, so a payload that is not a reference is recognised with one
 * `charCodeAt(0)` and passes through untouched. Pure: no database.
 */
import type { ReferenceProblem } from '../base/reasons.ts';

/** Starts every reference; the id follows it. */
export const MARKER = '\u001Epgws:';

/**
 * Starts the wake-up `pgws.send` notifies on a durable channel; the new message's seq follows it. The message
 * itself is a row of `pgws.messages`, read by the bridge (`delivery/durable.ts`).
 */
export const CHANNEL_WAKE = '\u001Epgws#';

/** The seq a wake-up names, or undefined when the payload is not one. */
export function wakeSeq(payload: string): number | undefined {
  if (!payload.startsWith(CHANNEL_WAKE)) return undefined;
  const seq = Number(payload.slice(CHANNEL_WAKE.length));
  return Number.isSafeInteger(seq) && seq > 0 ? seq : undefined;
}

/** The first UTF-16 unit of {@link MARKER}: the one test every notification pays for. */
export const MARKER_CODE = 0x1e;

/** What a fetch of a stored payload found; `bytes` is its size when it was too large. */
export type Fetched =
  | { readonly ok: true; readonly payload: string }
  | {
      readonly ok: false;
      readonly reason: Exclude<ReferenceProblem, 'reference_malformed'>;
      readonly bytes?: number;
      readonly error?: unknown;
    };

// gen_random_uuid()::text: lowercase, hyphenated.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether a payload is a reference (well-formed or not): it starts with the whole marker. */
export const isReference = (payload: string): boolean => payload.startsWith(MARKER);

/** The id a reference names, or undefined when what follows the marker is not one. */
export function referenceId(payload: string): string | undefined {
  const id = payload.slice(MARKER.length);
  return UUID.test(id) ? id : undefined;
}
