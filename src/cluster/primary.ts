/**
 * The primary's side of `[server] workers > 1`: the instance's one LISTEN connection serves every worker.
 * A worker asks for a channel (`listen`), the primary LISTENs it on the worker's behalf and answers with
 * the channel's stream; from then on every notification on it, validated and numbered once here, is sent
 * to that worker in order. So epoch, seq and history are the instance's, whichever worker a client lands on.
 * Likewise the cut-offs read from the control channel and the replication connection's state reach every
 * worker, and the slots of `max_connections_per_subject` are counted here for all of them (`claims.ts`).
 * No I/O of its own: links to workers are passed in (`workers.ts` owns the processes).
 */

import type { Cutoff, Revocations } from '../auth/revocations.ts';
import type { SubjectCounter } from '../auth/slots.ts';
import { type Clock, systemClock } from '../base/clock.ts';
import { ChannelLimitError } from '../base/errors.ts';
import type { Logger } from '../base/log.ts';
import type { WorkerRestartReason } from '../base/reasons.ts';
import type { Stats } from '../base/stats.ts';
import type { Listener, ListenerState } from '../db/listener.ts';
import { aggregateMetrics, type WorkerSample } from '../observe/aggregate.ts';
import type { Position } from '../protocol/history.ts';
import type { Hub } from '../protocol/hub.ts';
import { createLedger } from './claims.ts';
import type { ToPrimary, ToWorker, WorkerLink } from './messages.ts';
import { createOutbox, type Outbox } from './outbox.ts';
import { createSampler } from './samples.ts';

/** Options of {@link createCluster}. */
export interface ClusterOptions {
  /** Its `acquire` enforces `max_channels` for the whole instance: one LISTEN connection carries them all. */
  listener: Pick<Listener, 'state' | 'acquire' | 'release'>;
  hub: Pick<Hub, 'has' | 'snapshot' | 'position'>;
  /** Channels LISTENed for the life of the process (history): every worker follows them from its start. */
  pinned: readonly string[];
  /** The instance's slots per subject: the primary's own connections take them here, workers' by claim. */
  slots: SubjectCounter;
  /** The revocations as read here: a worker that says hello while they are current gets them all. */
  revocations: Pick<Revocations, 'current' | 'rows'>;
  /** This process's own metrics, in the form `aggregate` takes. */
  sample(): Promise<unknown>;
  /** Every process's metrics as one exposition text; per worker when `byWorker` (`aggregateMetrics` by default). */
  aggregate?: ((samples: readonly WorkerSample[], byWorker: boolean) => Promise<string>) | undefined;
  /** `[server] worker_backlog_bytes`: a worker leaving more deliveries than this unacknowledged is killed. */
  backlogBytes: number;
  /** Where restarts of workers are counted. */
  stats: Pick<Stats, 'workerRestart'>;
  log: Logger;
  /** Times the wait for workers' metrics samples (the real clock by default). */
  clock?: Clock | undefined;
}

/** The primary's view of its workers. */
export interface Cluster {
  attach(link: WorkerLink): void;
  /**
   * The worker is gone: everything it held is released. `restart` says why, when `workers.ts` starts it
   * again; a worker the primary killed itself was detached (and counted) when it was killed.
   */
  detach(link: WorkerLink, restart?: WorkerRestartReason): void;
  receive(link: WorkerLink, message: ToPrimary): void;
  /** Hands a notification on a worker's probe channel to that worker; false when it is no probe's. */
  probe(channel: string, payload: string): boolean;
  /** Queues a delivered, numbered notification for every worker that holds its channel. */
  forward(channel: string, frame: string, at: Position): void;
  /** A durable channel lost rows before they were read: every worker that holds it sends its `gap`, in order. */
  gap(channel: string, at: Position): void;
  /** The replication connection is up or down: every worker's `/readyz` follows it. */
  ingest(ready: boolean): void;
  /** The LISTEN connection changed state (after a loss, once the hub has started its new epochs). */
  state(state: ListenerState): void;
  /** Hands a cut-off read from the control channel to every worker. */
  cutoff(cutoff: Cutoff): void;
  /** The whole server's /metrics text: every process's figures summed, or each labelled by worker. */
  scrape(byWorker: boolean): Promise<string>;
}

interface Member {
  readonly link: WorkerLink;
  probe: string | undefined;
  probeState: 'none' | 'pending' | 'held';
  /** LISTENs taken on the worker's behalf, per channel (one per `listen` it sent and we answered). */
  readonly held: Map<string, number>;
  readonly outbox: Outbox;
  gone: boolean;
}

/** Creates the primary's cluster state; nothing is sent until a worker says hello. */
export function createCluster(options: ClusterOptions): Cluster {
  const { listener, hub, revocations, stats, log, clock = systemClock } = options;
  const pinned = new Set(options.pinned);
  const members = new Map<WorkerLink, Member>();
  const ledger = createLedger<Member>(options.slots);
  const probes = new Map<string, Member>();
  let ingestReady = true;

  // Control messages never overtake deliveries queued before them.
  const send = (member: Member, message: ToWorker) => member.outbox.send(message);
  const follows = (member: Member, channel: string) => pinned.has(channel) || member.held.has(channel);

  const holdProbe = (member: Member) => {
    const probe = member.probe;
    if (probe === undefined || member.probeState !== 'none') return;
    member.probeState = 'pending';
    listener.acquire(probe).then(
      () => {
        if (member.gone) return listener.release(probe);
        member.probeState = 'held';
        if (listener.state === 'up') send(member, { t: 'state', state: 'up' });
      },
      // Tried again at the next `up`.
      () => {
        member.probeState = 'none';
      },
    );
  };

  const listen = async (member: Member, id: number, channel: string) => {
    try {
      await listener.acquire(channel);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const limit = error instanceof ChannelLimitError ? { maxChannels: error.maxChannels } : {};
      return send(member, { t: 'listened', id, error: message, ...limit });
    }
    if (member.gone) return listener.release(channel);
    member.held.set(channel, (member.held.get(channel) ?? 0) + 1);
    send(member, { t: 'listened', id, snapshot: hub.snapshot(channel) });
  };

  const unlisten = (member: Member, channel: string) => {
    const count = member.held.get(channel);
    if (count === undefined) return log.warn('worker released a channel it does not hold', { channel });
    if (count > 1) member.held.set(channel, count - 1);
    else member.held.delete(channel);
    listener.release(channel);
  };

  const detach = (link: WorkerLink, restart?: WorkerRestartReason) => {
    const member = members.get(link);
    if (member === undefined) return;
    member.gone = true;
    member.outbox.close();
    members.delete(link);
    if (restart !== undefined) stats.workerRestart(restart);
    ledger.forget(member);
    for (const [channel, count] of member.held) for (let i = 0; i < count; i++) listener.release(channel);
    if (member.probe !== undefined) {
      probes.delete(member.probe);
      if (member.probeState === 'held') listener.release(member.probe);
    }
  };

  const sampler = createSampler<Member>({
    workers: () =>
      [...members.values()]
        .filter((member) => !member.gone && member.probe !== undefined)
        .map((member) => [member, member.link.index] as const),
    ask: (member, id) => send(member, { t: 'sample', id }),
    sample: options.sample,
    aggregate: options.aggregate ?? aggregateMetrics,
    clock,
    log,
  });

  return {
    attach(link) {
      const outbox = createOutbox({ link, limit: options.backlogBytes, log, overflow: () => detach(link, 'backlog') });
      members.set(link, { link, probe: undefined, probeState: 'none', held: new Map(), outbox, gone: false });
    },
    detach,
    receive(link, message) {
      const member = members.get(link);
      if (member === undefined) return;
      switch (message.t) {
        case 'hello': {
          member.probe = message.probe;
          probes.set(message.probe, member);
          const state = listener.state === 'up' ? 'connecting' : listener.state;
          send(member, { t: 'welcome', state, pinned: [...pinned].map((c) => [c, hub.snapshot(c)] as const) });
          // Not current: the worker gets them with everyone else once the next full read is done.
          if (revocations.current) {
            send(member, { t: 'cutoff', cutoff: { kind: 'revocations', rows: revocations.rows() } });
          }
          if (listener.state === 'up') holdProbe(member);
          if (!ingestReady) send(member, { t: 'ingest', ready: false });
          return;
        }
        case 'listen':
          return void listen(member, message.id, message.channel);
        case 'unlisten':
          return unlisten(member, message.channel);
        case 'sampled':
          return sampler.answered(message.id, message.metrics);
        case 'claim':
          return send(member, { t: 'claimed', id: message.id, ok: ledger.claim(member, message.subject) });
        case 'unclaim':
          return ledger.unclaim(member, message.subject);
        case 'ack':
          return member.outbox.acked(message.bytes);
        case 'scrape':
          void sampler.scrape(message.byWorker).then(
            (text) => send(member, { t: 'scraped', id: message.id, text }),
            (error: unknown) => {
              log.error('metrics scrape failed', { error });
              send(member, { t: 'scraped', id: message.id, text: '' });
            },
          );
          return;
      }
    },
    probe(channel, payload) {
      const member = probes.get(channel);
      if (member === undefined) return false;
      send(member, { t: 'probe', token: payload });
      return true;
    },
    forward(channel, frame, at) {
      for (const member of members.values()) {
        if (follows(member, channel)) member.outbox.deliver([channel, frame, at.epoch, at.seq]);
      }
    },
    gap(channel, { epoch, seq }) {
      for (const member of members.values())
        if (follows(member, channel)) send(member, { t: 'gap', channel, epoch, seq });
    },
    ingest(ready) {
      ingestReady = ready;
      for (const member of members.values()) if (member.probe !== undefined) send(member, { t: 'ingest', ready });
    },
    state(state) {
      for (const member of members.values()) {
        if (member.probe === undefined) continue;
        if (state === 'up') {
          if (member.probeState === 'held') send(member, { t: 'state', state });
          else holdProbe(member);
          continue;
        }
        const epochs: (readonly [string, string])[] = [];
        for (const channel of [...pinned, ...member.held.keys()]) {
          if (hub.has(channel)) epochs.push([channel, hub.position(channel).epoch]);
        }
        send(member, { t: 'state', state, epochs });
      }
    },
    cutoff(cutoff) {
      // Before its hello a worker has no connection to close, and it gets the revocations at its hello.
      for (const member of members.values()) if (member.probe !== undefined) send(member, { t: 'cutoff', cutoff });
    },
    scrape: sampler.scrape,
  };
}
