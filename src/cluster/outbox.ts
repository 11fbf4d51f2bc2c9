/**
 * The primary's queue of deliveries for one worker (`[server] workers > 1`). Deliveries of one read from the
 * LISTEN connection go as one `deliver` message; control messages go after whatever was queued before them.
 *
 * Bun's IPC channel buffers without limit what a worker does not read, so the outbox counts the bytes it
 * sent (or queued) that the worker has not acknowledged yet. A worker that stops reading (its event loop
 * blocked, its process stopped) passes `[server] worker_backlog_bytes` sooner or later: then the outbox
 * sends nothing more, logs it once and kills the worker through its link, and `workers.ts` starts it again.
 */
import type { Logger } from '../base/log.ts';
import type { Delivery, ToWorker, WorkerLink } from './messages.ts';

/** A cheap stand-in for what a delivery costs in the IPC buffer besides its strings (the tuple, the JSON). */
const DELIVERY_OVERHEAD_BYTES = 64;

/** Options of {@link createOutbox}. */
export interface OutboxOptions {
  link: WorkerLink;
  /** `[server] worker_backlog_bytes`: a delivery that finds more than this unacknowledged kills the worker. */
  limit: number;
  log: Logger;
  /** Called once, when a delivery finds the unacknowledged bytes past `limit`, just before the worker is killed. */
  overflow(): void;
}

/** One worker's deliveries on their way, counted until the worker acknowledges them. */
export interface Outbox {
  /** Queues a delivery; those queued in one synchronous run (one read) go as one batch, at its end. */
  deliver(delivery: Delivery): void;
  /** Sends a control message, after the deliveries queued before it. */
  send(message: ToWorker): void;
  /** The worker's `ack`: it handed deliveries of so many (estimated) bytes to its clients. */
  acked(bytes: number): void;
  /** The worker is gone: what is queued is dropped and nothing more is sent. */
  close(): void;
}

/** Creates an open, empty outbox. */
export function createOutbox(options: OutboxOptions): Outbox {
  const { link, limit } = options;
  let pending: Delivery[] = [];
  let pendingBytes = 0;
  let unacked = 0;
  let flushing = false;
  let closed = false;

  const flush = () => {
    flushing = false;
    if (pending.length === 0 || closed) return;
    const batch = pending;
    const bytes = pendingBytes;
    pending = [];
    pendingBytes = 0;
    link.send({ t: 'deliver', batch, bytes });
  };
  const close = () => {
    closed = true;
    pending = [];
    pendingBytes = 0;
  };

  return {
    deliver(delivery) {
      if (closed) return;
      // Checked before this one is added, so one delivery larger than the bound still reaches a worker that
      // keeps up. One that stopped reading is killed, not waited for: its backlog is the primary's memory.
      if (unacked > limit) {
        close();
        options.log.error('worker stopped reading its deliveries; killing and restarting it', {
          worker: link.index,
          bytes: unacked,
          limit,
        });
        options.overflow();
        return link.kill();
      }
      const [channel, frame, epoch] = delivery;
      const bytes = channel.length + frame.length + epoch.length + DELIVERY_OVERHEAD_BYTES;
      unacked += bytes;
      pending.push(delivery);
      pendingBytes += bytes;
      if (flushing) return;
      flushing = true;
      // postgres.js hands over every notification of one read synchronously: one message per read.
      queueMicrotask(flush);
    },
    send(message) {
      flush();
      if (!closed) link.send(message);
    },
    acked(bytes) {
      unacked = Math.max(0, unacked - bytes);
    },
    close,
  };
}
