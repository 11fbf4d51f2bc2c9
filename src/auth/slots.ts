/**
 * `[auth] max_connections_per_subject`: how many connections (sockets and streams) one subject holds on
 * an instance. Counted once per instance: a lone process, or the primary of `[server] workers > 1`, keeps
 * the {@link SubjectCounter}; a worker asks the primary for its slots over IPC (`cluster/claims.ts`).
 */

/** Connection slots per subject, as upgrades and `auth` frames take them. */
export interface SubjectSlots {
  /** Whether a limit is set at all; without one, `take` always succeeds and nothing is counted. */
  readonly limited: boolean;
  /** Takes a slot for `subject`; false (nothing taken) when it already holds the limit. */
  take(subject: string): Promise<boolean>;
  /** Gives back a slot `take` gave. */
  give(subject: string): void;
}

/** The instance's own count, which answers at once. */
export interface SubjectCounter extends SubjectSlots {
  /** `take`, synchronously: what the primary answers a worker's claim with. */
  takeNow(subject: string): boolean;
  /** Slots `subject` holds now. */
  held(subject: string): number;
}

/** Counts slots against `limit` (0: no limit, nothing counted). Subjects holding none take no memory. */
export function createSubjectCounter(limit: number): SubjectCounter {
  const held = new Map<string, number>();
  const limited = limit > 0;
  const takeNow = (subject: string) => {
    if (!limited) return true;
    const count = held.get(subject) ?? 0;
    if (count >= limit) return false;
    held.set(subject, count + 1);
    return true;
  };
  return {
    limited,
    takeNow,
    take: async (subject) => takeNow(subject),
    give(subject) {
      const count = held.get(subject);
      if (count === undefined) return;
      if (count > 1) held.set(subject, count - 1);
      else held.delete(subject);
    },
    held: (subject) => held.get(subject) ?? 0,
  };
}
