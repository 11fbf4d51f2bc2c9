/**
 * What `[auth]` decides for one process, in one piece: the one token and permission check (`access`), the
 * revocations it holds and, where the LISTEN connection is, the control channel that keeps them current
 * (`pgws.disconnect`, `pgws.revoke`), who speaks for which subject (so a cut-off closes its connections), and
 * the slots of `max_connections_per_subject`. The bridge hands it the listener's events and, in the primary,
 * the way to its workers; nothing here touches a socket or the database itself.
 */
import { type Access, createAccess, verifierFor } from '../auth/access.ts';
import { type Cutoff, createRevocations, type Revocations } from '../auth/revocations.ts';
import { createSubjectCounter, type SubjectCounter } from '../auth/slots.ts';
import type { KeySource } from '../auth/tokens.ts';
import type { Clock } from '../base/clock.ts';
import type { Logger } from '../base/log.ts';
import { CONTROL_CHANNEL } from '../base/name.ts';
import type { Stats } from '../base/stats.ts';
import type { Config } from '../config/load.ts';
import { createControl } from '../db/control.ts';
import type { ListenerState } from '../db/listener.ts';
import type { Queries } from '../db/queries.ts';
import { createSubjects, type Holder, type Subjects } from './subjects.ts';

/** Options of {@link createAuthority}. */
export interface AuthorityOptions {
  config: Pick<Config, 'auth' | 'database'>;
  /** `[auth]`'s key material; required with `[auth]`. */
  keys: KeySource | undefined;
  clock: Clock | undefined;
  isPublic(channel: string): boolean;
  stats: Stats;
  log: Logger;
}

/** The authority of one process. */
export interface Authority {
  readonly access: Access;
  readonly revocations: Revocations;
  readonly subjects: Subjects<Holder>;
  /** The instance's count of slots per subject (a worker claims its own from the primary's instead). */
  readonly counter: SubjectCounter;
  /** The channel the LISTEN connection must LISTEN beside its probe; none without `[auth]`. */
  readonly channel: string | undefined;
  /**
   * Where the LISTEN connection is (a lone process, the primary): reads the control channel through
   * `queries`, and hands every cut-off to `forward` as well (the workers).
   */
  read(
    queries: Pick<Queries, 'loadCutoffs' | 'readRevocation' | 'readDisconnect'>,
    forward?: (cutoff: Cutoff) => void,
  ): void;
  /** A notification on {@link channel}. */
  receive(payload: string): void;
  /** A cut-off, read here or by the primary: the revocations change, then the connections it reaches close. */
  apply(cutoff: Cutoff): void;
  /** The LISTEN connection's state: `up` reads everything again; any other makes the revocations stale. */
  state(state: ListenerState): void;
  stop(): void;
}

/** Creates the authority; the control channel is read only once `read` is called. */
export function createAuthority(options: AuthorityOptions): Authority {
  const { config, stats } = options;
  const log = options.log.child('auth');
  // Cut-offs matter only to tokens: without [auth] revocations are always current and empty.
  const revocations = createRevocations(config.auth !== undefined);
  const subjects = createSubjects<Holder>({ revocations, stats, log });
  let control: ReturnType<typeof createControl> | undefined;
  let forward: ((cutoff: Cutoff) => void) | undefined;
  const apply = (cutoff: Cutoff) => {
    revocations.apply(cutoff);
    subjects.apply(cutoff);
    forward?.(cutoff);
  };
  return {
    access: createAccess({
      auth: config.auth,
      verifier: verifierFor(config.auth, options.keys, options.clock),
      isPublic: options.isPublic,
      revocations,
      stats,
      log,
    }),
    revocations,
    subjects,
    counter: createSubjectCounter(config.auth?.maxConnectionsPerSubject ?? 0),
    channel: config.auth === undefined ? undefined : CONTROL_CHANNEL,
    read(queries, to) {
      if (config.auth === undefined) return;
      forward = to;
      control = createControl({
        queries,
        onCutoff: apply,
        retryMinMs: config.database.reconnectMinMs,
        retryMaxMs: config.database.reconnectMaxMs,
        log,
      });
    },
    receive: (payload) => control?.receive(payload),
    apply,
    state(state) {
      // The control channel is LISTENed by the time the connection is up: what the read misses arrives as a hint.
      if (state === 'up') return control?.reload();
      // Revocations committed from now on are not heard until the next full read: no token passes meanwhile.
      revocations.stale();
      control?.lost();
    },
    stop: () => control?.stop(),
  };
}
