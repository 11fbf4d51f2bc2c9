/**
 * Channels held by reference count: the first subscriber of a channel opens it (a LISTEN on the connection
 * in `listener.ts`, a request to the primary in `cluster/follower.ts`), the last one to leave closes it,
 * and each subscriber waits, within a bound, for the opening to complete. One rule for both, so a worker's
 * channels come and go exactly as a lone process's do.
 */
import { within } from '../base/timeout.ts';

/** What the registry keeps per channel; owners add fields of their own. */
export interface Held {
  /** Subscribers holding the channel; a pinned channel holds one that is never released. */
  count: number;
  /** Settles when the channel is open: resolves once it is, rejects if it could not be. */
  readonly ready: Promise<void>;
}

/** Why a channel stopped being held: its last subscriber left, or its opening failed. */
export type Closing = 'released' | 'failed';

/** Options of {@link createRegistry}. */
export interface RegistryOptions<E extends Held> {
  /** Opens a channel taken up for the first time; the entry's `ready` settles when the opening does. */
  open(channel: string): E;
  /** The channel is no longer held (it is already gone from the registry). */
  closed(channel: string, entry: E, why: Closing): void;
}

/** Reference-counted channels. */
export interface Registry<E extends Held> {
  readonly size: number;
  has(channel: string): boolean;
  get(channel: string): E | undefined;
  channels(): string[];
  /** Holds `channel` for good with `entry` (count 1, already open): channels that record with no subscriber. */
  pin(channel: string, entry: E): void;
  /**
   * Adds a subscriber, opening the channel if it is new, and waits for it to be open. On failure or after
   * `timeoutMs` the subscriber's reference is given back (a hung open must not leave it counted) and the
   * error is thrown on.
   */
  acquire(channel: string, timeoutMs: number): Promise<void>;
  /** Removes a subscriber; the last one closes the channel. */
  release(channel: string): void;
  /** Forgets `channel` after its opening failed, if `entry` is still the one held. */
  fail(channel: string, entry: E): void;
}

/** Creates an empty registry. */
export function createRegistry<E extends Held>(options: RegistryOptions<E>): Registry<E> {
  const entries = new Map<string, E>();

  const remove = (channel: string, entry: E, why: Closing) => {
    entries.delete(channel);
    options.closed(channel, entry, why);
  };
  function release(channel: string): void {
    const entry = entries.get(channel);
    if (entry === undefined) return;
    entry.count -= 1;
    if (entry.count <= 0) remove(channel, entry, 'released');
  }

  return {
    get size() {
      return entries.size;
    },
    has: (channel) => entries.has(channel),
    get: (channel) => entries.get(channel),
    channels: () => [...entries.keys()],
    pin(channel, entry) {
      entries.set(channel, entry);
    },
    async acquire(channel, timeoutMs) {
      let entry = entries.get(channel);
      if (entry === undefined) {
        entry = options.open(channel);
        entries.set(channel, entry);
      }
      entry.count += 1;
      const held = entry;
      try {
        await within(held.ready, timeoutMs, () => {
          throw new Error(`LISTEN did not complete within ${timeoutMs} ms`);
        });
      } catch (error) {
        if (entries.get(channel) === held) release(channel);
        throw error;
      }
    },
    release,
    fail(channel, entry) {
      if (entries.get(channel) === entry) remove(channel, entry, 'failed');
    },
  };
}
