/**
 * What the test kit saw on each channel: the messages its watcher received and the payloads the bridge dropped
 * as invalid, and the waits of `next`. When a wait times out, its error lists both, because "nothing arrived"
 * alone never says why: the payload that failed the schema, with the schema's complaint, is the answer.
 *
 * Pure: no socket, no database. The kit feeds it (`kit.ts`); timers are the only thing it schedules.
 */
import type { PayloadIssue } from '../channels/catalog.ts';
import { timeoutMessage } from './report.ts';

/** One message as a subscriber received it: the payload (parsed on schema channels) and its position. */
export interface Arrival<Payload = unknown> {
  readonly payload: Payload;
  readonly seq: number;
  readonly epoch: string;
}

/** A payload the bridge dropped as invalid: its text as sent, and what is wrong with it. */
export interface Dropped {
  readonly payload: string;
  readonly issues: readonly PayloadIssue[];
}

/** How one `next` waits. */
export interface Wait<Payload> {
  /** Only a message this returns true for counts; the others are listed if the wait times out. */
  readonly where?: ((payload: Payload, position: Omit<Arrival, 'payload'>) => boolean) | undefined;
  readonly timeoutMs: number;
  /** Settles once the channel is watched; a rejection (a refused subscribe) ends the wait with it. */
  readonly watched: Promise<void>;
  /**
   * The caller's stack frames (`Error.captureStackTrace`), given to the errors the wait rejects with: a test
   * runner then shows the test's own `next` line, not this file's timer.
   */
  readonly calledFrom?: string | undefined;
}

/**
 * `next` found no matching message in time. `arrived` holds the messages since the call that did not match,
 * `invalid` every payload dropped as invalid on the channel; the message lists both.
 */
export class NoMessageError extends Error {
  override name = 'NoMessageError' as const;

  constructor(
    message: string,
    readonly arrived: readonly Arrival[],
    readonly invalid: readonly Dropped[],
  ) {
    super(message);
  }
}

/** The record of one kit bridge. */
export interface Recorder {
  arrived(channel: string, arrival: Arrival): void;
  dropped(channel: string, payload: string, issues: readonly PayloadIssue[]): void;
  /** Every payload dropped as invalid on `channel` so far, oldest first. */
  invalid(channel: string): readonly Dropped[];
  /** The first message on `channel` after this call that `where` accepts. */
  next<Payload>(channel: string, wait: Wait<Payload>): Promise<Arrival<Payload>>;
  /** The bridge stops: waits still open reject. */
  close(): void;
}

// Kept per channel for the timeout message; a long test may send far more than a reader can use.
const KEPT = 100;

interface Waiter {
  accept(arrival: Arrival): void;
  fail(error: Error): void;
}

interface Channel {
  /** The latest arrivals (at most KEPT); `total` counts them all. */
  readonly recent: Arrival[];
  total: number;
  readonly dropped: Dropped[];
  readonly waiters: Set<Waiter>;
}

/** Creates an empty record. */
export function createRecorder(): Recorder {
  const channels = new Map<string, Channel>();
  let closed = false;
  const of = (name: string): Channel => {
    let channel = channels.get(name);
    if (channel === undefined) {
      channel = { recent: [], total: 0, dropped: [], waiters: new Set() };
      channels.set(name, channel);
    }
    return channel;
  };

  return {
    arrived(name, arrival) {
      const channel = of(name);
      channel.total += 1;
      if (channel.recent.push(arrival) > KEPT) channel.recent.shift();
      for (const waiter of [...channel.waiters]) waiter.accept(arrival);
    },
    dropped(name, payload, issues) {
      of(name).dropped.push({ payload, issues });
    },
    invalid: (name) => [...(channels.get(name)?.dropped ?? [])],
    next<Payload>(name: string, wait: Wait<Payload>) {
      const channel = of(name);
      const label = `bridge.next(${JSON.stringify(name)})`;
      if (closed) return Promise.reject(new Error(`${label}: the bridge is stopped`));
      const [fromTotal, fromDropped] = [channel.total, channel.dropped.length];
      const skipped: Arrival[] = [];
      const { promise, resolve, reject } = Promise.withResolvers<Arrival<Payload>>();
      let timer: Timer | undefined;
      const located = (error: Error) => {
        if (wait.calledFrom !== undefined) error.stack = `${error.name}: ${error.message}\n${wait.calledFrom}`;
        return error;
      };
      const waiter: Waiter = {
        accept(arrival) {
          const typed = arrival as Arrival<Payload>;
          let matches: boolean;
          try {
            matches = wait.where === undefined || wait.where(typed.payload, { seq: typed.seq, epoch: typed.epoch });
          } catch (error) {
            return waiter.fail(error instanceof Error ? error : new Error(String(error)));
          }
          if (!matches) return void skipped.push(arrival);
          finish();
          resolve(typed);
        },
        fail(error) {
          finish();
          reject(error);
        },
      };
      const finish = () => {
        clearTimeout(timer);
        channel.waiters.delete(waiter);
      };
      channel.waiters.add(waiter);
      timer = setTimeout(() => {
        const invalid = channel.dropped.slice();
        const { timeoutMs } = wait;
        const filtered = wait.where !== undefined;
        const seen = { name, timeoutMs, filtered, skipped, invalid, fromDropped, before: fromTotal };
        waiter.fail(located(new NoMessageError(timeoutMessage(label, seen), skipped, invalid)));
      }, wait.timeoutMs);
      wait.watched.catch((error: unknown) => {
        const reason = error instanceof Error ? error.message : String(error);
        waiter.fail(located(new Error(`${label}: the channel cannot be watched: ${reason}`, { cause: error })));
      });
      return promise;
    },
    close() {
      closed = true;
      for (const channel of channels.values())
        for (const waiter of [...channel.waiters]) waiter.fail(new Error('bridge.next: the bridge was stopped'));
    },
  };
}
