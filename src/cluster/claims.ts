/**
 * `[auth] max_connections_per_subject` across `[server] workers`: the primary counts for the instance. A
 * worker's slots ({@link workerSlots}) claim each one from the primary over IPC; the primary answers from the
 * instance's one counter, its own connections included, and keeps a ledger of what each worker holds
 * ({@link createLedger}), so the slots of a worker that dies are given back with it.
 *
 * No I/O of its own: messages go through the link `workers.ts` and `main.ts` own.
 */
import type { SubjectCounter, SubjectSlots } from '../auth/slots.ts';
import { type Clock, systemClock } from '../base/clock.ts';
import type { Logger } from '../base/log.ts';
import { within } from '../base/timeout.ts';
import type { ToPrimary } from './messages.ts';

/** The primary's record of the slots its workers hold, per worker. */
export interface Ledger<W> {
  /** A worker's claim: takes a slot of the instance's counter when there is one left. */
  claim(worker: W, subject: string): boolean;
  unclaim(worker: W, subject: string): void;
  /** The worker is gone: every slot it held goes back. */
  forget(worker: W): void;
}

/** Creates the ledger over the instance's counter. */
export function createLedger<W>(counter: SubjectCounter): Ledger<W> {
  const held = new Map<W, Map<string, number>>();
  return {
    claim(worker, subject) {
      if (!counter.takeNow(subject)) return false;
      let subjects = held.get(worker);
      if (subjects === undefined) {
        subjects = new Map();
        held.set(worker, subjects);
      }
      subjects.set(subject, (subjects.get(subject) ?? 0) + 1);
      return true;
    },
    unclaim(worker, subject) {
      const subjects = held.get(worker);
      const count = subjects?.get(subject);
      if (subjects === undefined || count === undefined) return;
      if (count > 1) subjects.set(subject, count - 1);
      else subjects.delete(subject);
      counter.give(subject);
    },
    forget(worker) {
      for (const [subject, count] of held.get(worker) ?? []) for (let i = 0; i < count; i++) counter.give(subject);
      held.delete(worker);
    },
  };
}

/** A worker's slots, and the handler of the primary's answers. */
export interface WorkerSlots extends SubjectSlots {
  /** The primary's answer to a claim. */
  answered(id: number, ok: boolean): void;
}

/** Options of {@link workerSlots}. */
export interface WorkerSlotsOptions {
  /** Whether `[auth] max_connections_per_subject` is set: without it nothing is claimed or sent. */
  limited: boolean;
  send(message: ToPrimary): void;
  log: Logger;
  clock?: Clock | undefined;
}

// The primary answers from memory; this covers an IPC round trip on a loaded machine.
const CLAIM_TIMEOUT_MS = 7000;

/** Slots claimed from the primary. */
export function workerSlots(options: WorkerSlotsOptions): WorkerSlots {
  const { limited, send, log, clock = systemClock } = options;
  const asked = new Map<number, (ok: boolean) => void>();
  let nextId = 0;
  const give = (subject: string) => {
    if (limited) send({ t: 'unclaim', subject });
  };
  return {
    limited,
    async take(subject) {
      if (!limited) return true;
      const id = ++nextId;
      const { promise, resolve } = Promise.withResolvers<boolean>();
      asked.set(id, resolve);
      send({ t: 'claim', id, subject });
      return within(
        promise,
        CLAIM_TIMEOUT_MS,
        () => {
          // Refused here; a slot granted after all is given straight back.
          asked.set(id, (ok) => ok && give(subject));
          log.warn('the primary did not answer a connection slot claim in time; refused', { subject });
          return false;
        },
        clock,
      );
    },
    give,
    answered(id, ok) {
      const resolve = asked.get(id);
      asked.delete(id);
      resolve?.(ok);
    },
  };
}
