/**
 * Turns references into their stored payloads without reordering a channel: the fetch of a reference
 * is started as it arrives (several pipeline on the query connection), and until it is answered every
 * later notification on that channel waits behind it in a queue. Each answer delivers, in arrival
 * order, everything at the head of the queue that is ready. A channel without a fetch outstanding has
 * no queue, and its notifications go straight through, synchronously, as they always did.
 *
 * Why order is enough for the multiplexed engine: `deliver` runs on the event loop in arrival (commit)
 * order per channel, exactly as a notification without a reference does, so a subscribe's replay and
 * live stream still join in one synchronous step. Pure: the fetch is handed in; timers only for its bound.
 */
import type { ReferenceProblem } from '../base/reasons.ts';
import { within } from '../base/timeout.ts';
import { type Fetched, isReference, referenceId } from './reference.ts';

/** What {@link createResolver} needs. */
export interface ResolverOptions {
  /** The stored payload of `id` on `channel`; never rejects (a failure is a `reference_failed` answer). */
  fetch(id: string, channel: string): Promise<Fetched>;
  /** A notification ready for clients, called in arrival order per channel. */
  deliver(channel: string, payload: string): void;
  /** A reference that cannot be resolved: dropped here, to be counted and logged (never with its content). */
  drop(channel: string, reason: ReferenceProblem, detail: DropDetail): void;
  /** A `deliver` that threw: logged; the queue goes on. */
  failed(error: unknown): void;
  /** A fetch that has not answered after this long is given up as `reference_failed`, so a channel never stalls. */
  timeoutMs: number;
}

/** What is known about a dropped reference: its id, the stored size (too large), the error (failed). */
export interface DropDetail {
  readonly id?: string;
  readonly bytes?: number;
  readonly error?: unknown;
}

/** The resolver of one bridge. */
export interface Resolver {
  /** Channels with a fetch outstanding. While 0, a notification that is not a reference need not come here. */
  readonly busy: number;
  /** Takes one notification: a reference, or any payload on a channel that is waiting for a fetch. */
  accept(channel: string, payload: string): void;
  /** Forgets every queue (the LISTEN connection was lost: a `gap` covers what they held). */
  reset(): void;
}

/** A notification in a channel's queue: `waiting` for its fetch, `ready` to deliver, or `dropped`. */
interface Entry {
  state: 'waiting' | 'ready' | 'dropped';
  payload: string;
}

interface Queue {
  readonly entries: Entry[];
  /** Index of the first entry not yet delivered (shifting an array per entry would be quadratic). */
  head: number;
}

/** Creates the resolver. */
export function createResolver(options: ResolverOptions): Resolver {
  const queues = new Map<string, Queue>();

  const deliver = (channel: string, payload: string) => {
    try {
      options.deliver(channel, payload);
    } catch (error) {
      options.failed(error);
    }
  };

  function flush(channel: string, queue: Queue): void {
    if (queues.get(channel) !== queue) return;
    const { entries } = queue;
    while (queue.head < entries.length) {
      const entry = entries[queue.head] as Entry;
      if (entry.state === 'waiting') {
        // A channel that always has a fetch outstanding keeps its queue: drop what was delivered.
        if (queue.head >= 1024) {
          entries.splice(0, queue.head);
          queue.head = 0;
        }
        return;
      }
      queue.head += 1;
      if (entry.state === 'ready') deliver(channel, entry.payload);
      // Delivering may not re-enter this queue (notifications arrive from the socket, not from here).
    }
    queues.delete(channel);
  }

  function fetch(channel: string, id: string, entry: Entry, queue: Queue): void {
    const answered = options.fetch(id, channel).catch(
      (error: unknown): Fetched => ({
        ok: false,
        reason: 'reference_failed',
        error,
      }),
    );
    const failed = (): Fetched => ({ ok: false, reason: 'reference_failed' });
    void within(answered, options.timeoutMs, failed).then((fetched) => {
      if (fetched.ok) {
        entry.state = 'ready';
        entry.payload = fetched.payload;
      } else {
        entry.state = 'dropped';
        const { bytes, error } = fetched;
        options.drop(channel, fetched.reason, {
          id,
          ...(bytes === undefined ? {} : { bytes }),
          ...(error === undefined ? {} : { error }),
        });
      }
      flush(channel, queue);
    });
  }

  return {
    get busy() {
      return queues.size;
    },
    accept(channel, payload) {
      let queue = queues.get(channel);
      if (!isReference(payload)) {
        if (queue === undefined) return deliver(channel, payload);
        queue.entries.push({ state: 'ready', payload });
        return;
      }
      const id = referenceId(payload);
      if (id === undefined) return options.drop(channel, 'reference_malformed', {});
      if (queue === undefined) {
        queue = { entries: [], head: 0 };
        queues.set(channel, queue);
      }
      const entry: Entry = { state: 'waiting', payload: '' };
      queue.entries.push(entry);
      fetch(channel, id, entry, queue);
    },
    reset() {
      queues.clear();
    },
  };
}
