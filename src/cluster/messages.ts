/**
 * What the primary and its workers say to each other over Bun's IPC channel (`[server] workers > 1`).
 * One LISTEN connection per instance lives in the primary; workers follow it: the primary validates and
 * numbers each notification once and sends it, with its position, to the workers that hold the channel.
 */
import type { Cutoff } from '../auth/revocations.ts';
import type { ListenerState } from '../db/listener.ts';
import type { Snapshot } from '../protocol/history.ts';

/** One delivery: channel, the plain-mode frame, and the position the primary gave it (epoch, seq). */
export type Delivery = readonly [channel: string, frame: string, epoch: string, seq: number];

/** Primary to worker. */
export type ToWorker =
  /** The answer to `hello`: the primary's state and where each pinned (history) channel stands. */
  | { readonly t: 'welcome'; readonly state: ListenerState; readonly pinned: readonly (readonly [string, Snapshot])[] }
  /** The LISTEN connection changed state; after a loss, the epoch each of the worker's channels starts. */
  | { readonly t: 'state'; readonly state: ListenerState; readonly epochs?: readonly (readonly [string, string])[] }
  /** The answer to `listen`: the channel's stream to follow from now on, or why it could not be LISTENed. */
  | {
      readonly t: 'listened';
      readonly id: number;
      readonly snapshot?: Snapshot;
      readonly error?: string;
      /** Set when the error is the instance's `max_channels`, which it then names. */
      readonly maxChannels?: number;
    }
  /** `[database] ingest = "replication"`: the primary's replication connection is up (`ready`) or not. */
  | { readonly t: 'ingest'; readonly ready: boolean }
  /** A durable channel's rows up to `seq` were deleted before they were read: its subscribers get a `gap`. */
  | { readonly t: 'gap'; readonly channel: string; readonly epoch: string; readonly seq: number }
  /**
   * Deliveries in commit order, batched per read from the LISTEN connection. `bytes` is the primary's
   * estimate of their size, which the worker's `ack` hands back (`outbox.ts`).
   */
  | { readonly t: 'deliver'; readonly batch: readonly Delivery[]; readonly bytes: number }
  /** The worker's readiness probe came back through the LISTEN connection. */
  | { readonly t: 'probe'; readonly token: string }
  /** The primary asks for this worker's metrics (prom-client's JSON form). */
  | { readonly t: 'sample'; readonly id: number }
  /** The answer to `scrape`: the whole server's metrics text. */
  | { readonly t: 'scraped'; readonly id: number; readonly text: string }
  /** The answer to `claim`: whether the worker holds one more slot of the subject. */
  | { readonly t: 'claimed'; readonly id: number; readonly ok: boolean }
  /** A cut-off the primary's control channel read (every revocation, after a hello and after each full read). */
  | { readonly t: 'cutoff'; readonly cutoff: Cutoff };

/** Worker to primary. */
export type ToPrimary =
  /** First message: the worker's private probe channel, to be LISTENed for its canary. */
  | { readonly t: 'hello'; readonly probe: string }
  | { readonly t: 'listen'; readonly id: number; readonly channel: string }
  | { readonly t: 'unlisten'; readonly channel: string }
  /** The answer to `sample`. */
  | { readonly t: 'sampled'; readonly id: number; readonly metrics: unknown }
  /** A /metrics request landed on this worker: the primary gathers every process's metrics. */
  | { readonly t: 'scrape'; readonly id: number; readonly byWorker: boolean }
  /** A connection of `subject` is opening on the worker: one of the instance's slots, if it has one left. */
  | { readonly t: 'claim'; readonly id: number; readonly subject: string }
  /** A connection that held a slot of `subject` closed. */
  | { readonly t: 'unclaim'; readonly subject: string }
  /** A `deliver` was handed to the worker's clients: its `bytes`, so the primary counts them as read. */
  | { readonly t: 'ack'; readonly bytes: number };

/** How the primary reaches one worker (Bun's IPC channel and the process, both `workers.ts`'s). */
export interface WorkerLink {
  readonly index: number;
  send(message: ToWorker): void;
  /** Ends the worker at once (SIGKILL); `workers.ts` starts it again as after any exit. */
  kill(): void;
}

/** How a worker talks to its primary (Bun's IPC channel, from `main.ts`). */
export interface WorkerRole {
  readonly role: 'worker';
  send(message: ToPrimary): void;
  /** Called once, before anything is sent: every message from the primary goes to `handler`. */
  onMessage(handler: (message: ToWorker) => void): void;
}
